"""The simple rules that see the same candles as the model: one definition each, for the backtest and evaluate.

* ``abnormal_volume``: the log volume of a row minus the mean log volume of the ``TRAILING`` (20) rows
  before it (NaN where any of those 21 volumes is missing or not positive). The backtest's ``volume``
  baseline and exposure, and the evaluate return task's ``volume`` rule.
* ``past_return``: the close return over the last ``rows`` rows up to the decision row (``momentum``
  ranks by it, ``reversal`` by minus it).
* ``trailing_volatility``: the sample standard deviation (ddof 1) of the last ``TRAILING`` close log
  returns (``low_vol`` ranks by minus it).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

TRAILING = 20


def abnormal_volume(volume: np.ndarray, axis: int = -1, trailing: int = TRAILING) -> np.ndarray:
    """Log volume minus its trailing mean, at every position along ``axis``.

    Args:
        volume: raw volumes [..., T, ...] (time along ``axis``; NaN or <= 0 where there is none).
        trailing: rows of the trailing mean (the rows strictly before each position).

    Returns:
        float64 array of ``volume``'s shape; NaN for the first ``trailing`` positions and wherever a volume
        of the 21-row span is missing.
    """
    v = np.moveaxis(np.asarray(volume, dtype=np.float64), axis, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_v = np.log(np.where(v > 0, v, np.nan))
    out = np.full(log_v.shape, np.nan)
    if log_v.shape[-1] > trailing:
        prior = sliding_window_view(log_v[..., :-1], trailing, axis=-1).mean(axis=-1)  # [..., T - trailing]
        out[..., trailing:] = log_v[..., trailing:] - prior
    return np.moveaxis(out, -1, axis)


def past_return(close: np.ndarray, rows: int) -> np.ndarray:
    """Close return over the last ``rows`` rows: close [N, L] -> [N] (``c_L / c_(L - rows) - 1``)."""
    c = np.asarray(close, dtype=np.float64)
    rows = min(int(rows), c.shape[1] - 1)
    return c[:, -1] / c[:, -1 - rows] - 1.0


def trailing_volatility(close: np.ndarray, axis: int = -1, trailing: int = TRAILING) -> np.ndarray:
    """Sample std (ddof 1) of the ``trailing`` close log returns up to each position along ``axis``.

    Args:
        close: raw closes [..., T, ...] (time along ``axis``; NaN where there is none).

    Returns:
        float64 array of ``close``'s shape; NaN for the first ``trailing`` positions and wherever a close of the
        span is missing.
    """
    c = np.moveaxis(np.asarray(close, dtype=np.float64), axis, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.diff(np.log(np.where(c > 0, c, np.nan)), axis=-1)                  # [..., T - 1]
    out = np.full(c.shape, np.nan)
    if r.shape[-1] >= trailing:
        out[..., trailing:] = sliding_window_view(r, trailing, axis=-1).std(axis=-1, ddof=1)
    return np.moveaxis(out, -1, axis)
