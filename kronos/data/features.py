"""Kronos input features: the six price/volume columns, time stamps and causal normalisation.

Shared by the datamodules (training windows) and by ``KronosPredictor`` (inference), so that
what a model is trained on and what it is asked to forecast are built by the same code.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
STAMP_FIELDS: tuple[str, ...] = ("minute", "hour", "weekday", "day", "month")
NORM_EPS = 1e-5


def fill_volume_amount(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with all six FEATURES columns, filling the missing ones.

    Missing volume -> volume = amount = 0; missing amount -> amount = volume * mean(OHLC).
    ``df`` must already hold open, high, low and close.
    """
    out = df.copy()
    if "volume" not in out.columns:
        out["volume"] = 0.0
        out["amount"] = 0.0
    if "amount" not in out.columns:
        out["amount"] = out["volume"] * out[list(PRICE_COLUMNS)].mean(axis=1)
    return out


def feature_matrix(df: pd.DataFrame, features: Sequence[str] = FEATURES) -> np.ndarray:
    """The feature columns of ``df`` (missing volume/amount filled) as float32 [T, len(features)]."""
    return fill_volume_amount(df)[list(features)].to_numpy(dtype=np.float32)


def time_features(timestamps: pd.Series | pd.DatetimeIndex | Sequence) -> np.ndarray:
    """Integer calendar fields per row: int64 [T, 5] = (minute, hour, weekday (Mon=0), day, month)."""
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    return np.stack(
        [ts.minute, ts.hour, ts.weekday, ts.day, ts.month], axis=-1
    ).astype(np.int64)


def lookback_stats(x_hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std over the time axis of the history only.

    x_hist: [..., L, F] -> (mean, std), each [..., F]. Never pass horizon rows here:
    statistics that see the future leak it into the model's inputs.
    """
    x = np.asarray(x_hist, dtype=np.float64)
    return x.mean(axis=-2).astype(np.float32), x.std(axis=-2).astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """``clip((x - mean) / (std + 1e-5), -clip, clip)``; x [..., T, F], mean/std [..., F]."""
    z = (x - mean[..., None, :]) / (std[..., None, :] + NORM_EPS)
    return np.clip(z, -clip, clip).astype(np.float32)


def denormalize(z: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize` (without the clip): z [..., T, F], mean/std [..., F]."""
    return (z * (std[..., None, :] + NORM_EPS) + mean[..., None, :]).astype(np.float32)
