"""ForecastSamples: the sample paths of one series' forecast, with mean and quantile views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from kronos.data.features import FEATURES
from kronos.inference.candles import CandleRepairs


def sample_quantiles(paths: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """The one quantile routine over sample paths: paths [S, ...] -> [len(qs), ...].

    Linear interpolation between order statistics (numpy's default), so q=0.5 of two samples is their
    mean; every table, band and fan in the project takes its quantiles from here.
    """
    levels = np.asarray([float(q) for q in qs], dtype=np.float64)
    if levels.size and not np.all((levels >= 0.0) & (levels <= 1.0)):
        raise ValueError(f"quantile levels must lie in [0, 1], got {list(qs)}")
    return np.quantile(np.asarray(paths), levels, axis=0)


@dataclass
class ForecastSamples:
    """De-normalised sample paths of one forecast.

    paths: float32 [S, H, 6] (columns ``FEATURES``), every candle possible; index: the H future timestamps;
    repairs: what :mod:`kronos.inference.candles` changed to make them so.
    """

    paths: np.ndarray
    index: pd.DatetimeIndex
    columns: tuple[str, ...] = field(default=FEATURES)
    repairs: CandleRepairs = field(default_factory=CandleRepairs)

    def mean(self) -> pd.DataFrame:
        """Mean over the S paths: DataFrame [H, 6] indexed by the future timestamps (``attrs["candle_repairs"]``:
        the repair counts of the paths)."""
        frame = pd.DataFrame(self.paths.mean(axis=0), index=self.index, columns=list(self.columns))
        frame.attrs["candle_repairs"] = self.repairs.as_dict()
        return frame

    def quantiles(self, qs: Sequence[float] = (0.1, 0.5, 0.9)) -> dict[float, pd.DataFrame]:
        """Per-step quantiles over the S paths: {q: DataFrame [H, 6]}."""
        levels = sample_quantiles(self.paths, qs)
        return {
            float(q): pd.DataFrame(level, index=self.index, columns=list(self.columns)) for q, level in zip(qs, levels)
        }
