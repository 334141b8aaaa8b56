"""Forecast quality against the realised future, beside a naive persistence forecast."""

from __future__ import annotations

import numpy as np


def close_metrics(last_close: float, predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """MAE and direction accuracy of a close forecast over the rows where the actual is known.

    Direction accuracy is the share of steps where the forecast and the actual lie on the same
    side of (or both at) the last observed close, i.e. the sign of the predicted move since the
    decision time is right.

    Args:
        last_close: close of the last history row.
        predicted: forecast closes [H].
        actual: realised closes [h], h <= H (only the first h forecasts are scored).
    """
    h = len(actual)
    pred = np.asarray(predicted, dtype=np.float64)[:h]
    act = np.asarray(actual, dtype=np.float64)
    return {
        "mae_close": float(np.mean(np.abs(pred - act))),
        "direction_accuracy": float(np.mean(np.sign(pred - last_close) == np.sign(act - last_close))),
    }


def compare_with_persistence(last_close: float, predicted: np.ndarray, actual: np.ndarray) -> dict[str, object]:
    """Metrics of the model and of persistence (every future close = last close) on the same rows."""
    persistence = np.full(len(actual), last_close, dtype=np.float64)
    return {
        "rows": len(actual),
        "model": close_metrics(last_close, predicted, actual),
        "persistence": close_metrics(last_close, persistence, actual),
    }
