"""ForecastSamples: the sample paths of one series' forecast, with mean and quantile views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from kronos.data.features import FEATURES


@dataclass
class ForecastSamples:
    """De-normalised sample paths of one forecast.

    paths: float32 [S, H, 6] (columns ``FEATURES``); index: the H future timestamps.
    """

    paths: np.ndarray
    index: pd.DatetimeIndex
    columns: tuple[str, ...] = field(default=FEATURES)

    def mean(self) -> pd.DataFrame:
        """Mean over the S paths: DataFrame [H, 6] indexed by the future timestamps."""
        return pd.DataFrame(self.paths.mean(axis=0), index=self.index, columns=list(self.columns))

    def quantiles(self, qs: Sequence[float] = (0.1, 0.5, 0.9)) -> dict[float, pd.DataFrame]:
        """Per-step quantiles over the S paths: {q: DataFrame [H, 6]}."""
        return {
            float(q): pd.DataFrame(np.quantile(self.paths, q, axis=0), index=self.index, columns=list(self.columns))
            for q in qs
        }
