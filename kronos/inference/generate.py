"""Synthetic K-line generation: whole generated OHLCV continuations of given contexts (the paper's task).

Where a forecast averages its sample paths, generation keeps every path: each is one synthetic
continuation of the context. The defaults are the paper's generation settings (T 1.0, top-p 0.95).

    from kronos.inference.generate import generate
    frames = generate(predictor, df, x_timestamp, pred_len=60, sampling=SamplingSettings(sample_count=8, seed=0))
    frames[0]   # timestamps, open, high, low, close, volume, amount of the first generated continuation
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kronos.data.features import FEATURES
from kronos.inference.sessions import future_index
from kronos.inference.settings import SamplingSettings
from kronos.inference.validation import ForecastInputError

if TYPE_CHECKING:  # the predictor calls generate (KronosPredictor.generate); generate only needs its type
    from kronos.inference.predictor import KronosPredictor

TIME_COLUMN = "timestamps"
GENERATION_SAMPLING = SamplingSettings(T=1.0, top_k=0, top_p=0.95, sample_count=1)
PATH_COLUMN = "path"


def generated_frames(paths: np.ndarray, index: pd.DatetimeIndex) -> list[pd.DataFrame]:
    """Sample paths [S, H, 6] (FEATURES order, price units) -> S frames with ``timestamps`` and the features."""
    return [pd.DataFrame({TIME_COLUMN: index, **{f: path[:, j] for j, f in enumerate(FEATURES)}}) for path in paths]


def long_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Generated frames stacked into one table with a ``path`` column (0..S-1) first: the CSV layout."""
    return pd.concat([frame.assign(**{PATH_COLUMN: k}) for k, frame in enumerate(frames)],
                     ignore_index=True)[[PATH_COLUMN, TIME_COLUMN, *FEATURES]]


def generate(predictor: KronosPredictor, df: pd.DataFrame, x_timestamp: Any, y_timestamp: Any = None,
             pred_len: int | None = None, sampling: SamplingSettings = GENERATION_SAMPLING) -> list[pd.DataFrame]:
    """``sampling.sample_count`` generated continuations of ``pred_len`` rows after the context ``df``.

    Args:
        predictor: a loaded pair.
        df: the context rows (open, high, low, close; volume, amount optional); x_timestamp: its datetimes.
        y_timestamp: the future datetimes (their count is the length); None: ``pred_len`` stamps on the
            context's own sessions (see :func:`kronos.inference.sessions.future_index`).
        pred_len: rows to generate (needed when ``y_timestamp`` is None; must match it otherwise).
        sampling: T, top_k, top_p, sample_count (continuations drawn), seed.

    Returns:
        ``sample_count`` frames of ``pred_len`` rows: ``timestamps``, open, high, low, close, volume, amount.

    Raises:
        ForecastInputError: bad sampling settings, lengths that disagree, or a non-finite generation.
    """
    if y_timestamp is None:
        if pred_len is None:
            raise ForecastInputError("give y_timestamp or pred_len: how many rows to generate")
        index = future_index(pd.Series(pd.to_datetime(x_timestamp)), int(pred_len)).index
    else:
        index = pd.DatetimeIndex(pd.to_datetime(y_timestamp))
        if pred_len is not None and int(pred_len) != len(index):
            raise ForecastInputError(f"pred_len {pred_len} differs from the {len(index)} y_timestamp values")
    samples = predictor.predict_samples(df, x_timestamp, pd.Series(index), len(index), verbose=False,
                                        sampling=sampling.validate())
    paths = np.asarray(samples.paths, dtype=np.float64)
    if not np.isfinite(paths).all():
        raise ForecastInputError("the generated rows hold non-finite values: check the context for extreme values")
    return generated_frames(paths, index)
