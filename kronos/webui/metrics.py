"""Forecast quality against the realised future, beside the naive (persistence) forecast.

What a trader reads off these numbers:
- direction accuracy is scored only on steps where both the forecast and the market moved away from
  the last close; a forecast with no direction (persistence: every step equals the last close) gets
  ``None`` ("n/a"), not 0 %. Its reference is a coin flip, 50 %.
- MAE of the close beside the naive forecast's MAE (every future close = last close).
- CRPS of the close (sample-based; for the single-valued naive forecast it equals its MAE) and how
  often the actual close fell inside the quantile band, beside the band's nominal coverage.
- ``beats`` says, per measure, whether the model did better than its reference: only then the page
  highlights it.
"""

from __future__ import annotations

import numpy as np

DIRECTION_REFERENCE = 0.5


def direction_accuracy(last_close: float, predicted: np.ndarray, actual: np.ndarray) -> tuple[float | None, int]:
    """Share of steps whose predicted move since ``last_close`` has the sign of the actual move.

    Steps where either side did not move have no direction and are left out; with none left the
    accuracy is None. Returns (accuracy or None, number of steps scored).
    """
    pred_move = np.sign(np.asarray(predicted, dtype=np.float64) - last_close)
    act_move = np.sign(np.asarray(actual, dtype=np.float64) - last_close)
    scored = (pred_move != 0) & (act_move != 0)
    n = int(scored.sum())
    return (float(np.mean(pred_move[scored] == act_move[scored])) if n else None), n


def crps_samples(samples: np.ndarray, actual: np.ndarray) -> float:
    """Mean over steps of the sample CRPS, E|X - y| - 0.5 E|X - X'|: samples [S, h], actual [h].

    Uses the sorted-sample identity E|X - X'| = 2/S^2 * sum_i (2i - S - 1) x_(i), O(S log S) per step.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=0)
    y = np.asarray(actual, dtype=np.float64)
    s = x.shape[0]
    term1 = np.mean(np.abs(x - y[None, :]), axis=0)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    term2 = np.sum(weights * x, axis=0) / (s * s)  # = 0.5 * E|X - X'|
    return float(np.mean(term1 - term2))


def close_metrics(last_close: float, predicted: np.ndarray, actual: np.ndarray) -> dict[str, object]:
    """MAE and direction accuracy of a close forecast over the rows where the actual is known.

    Args:
        last_close: close of the last history row.
        predicted: forecast closes [H].
        actual: realised closes [h], h <= H (only the first h forecasts are scored).
    """
    h = len(actual)
    pred = np.asarray(predicted, dtype=np.float64)[:h]
    act = np.asarray(actual, dtype=np.float64)
    accuracy, steps = direction_accuracy(last_close, pred, act)
    return {"mae_close": float(np.mean(np.abs(pred - act))), "direction_accuracy": accuracy, "direction_steps": steps}


def score_forecast(
    last_close: float,
    predicted: np.ndarray,
    actual: np.ndarray,
    close_samples: np.ndarray | None = None,
    band: tuple[float, float, np.ndarray, np.ndarray] | None = None,
) -> dict[str, object]:
    """Metrics of the model and of persistence on the rows with an actual, and which of them the model beats.

    Args:
        predicted: the model's point forecast of the close [H]; actual: realised closes [h <= H].
        close_samples: the model's sample paths of the close [S, H] (adds CRPS).
        band: (low level, high level, lower [H], upper [H]) (adds band coverage).
    """
    h = len(actual)
    act = np.asarray(actual, dtype=np.float64)
    persistence = np.full(h, last_close, dtype=np.float64)
    model = close_metrics(last_close, predicted, act)
    naive = close_metrics(last_close, persistence, act)
    if close_samples is not None:
        model["crps_close"] = crps_samples(np.asarray(close_samples)[:, :h], act)
        naive["crps_close"] = naive["mae_close"]  # CRPS of a single value is its absolute error
    out: dict[str, object] = {"rows": h, "model": model, "persistence": naive, "direction_reference": DIRECTION_REFERENCE}
    if band is not None:
        low, high, lower, upper = band
        inside = (act >= np.asarray(lower)[:h]) & (act <= np.asarray(upper)[:h])
        out["band"] = {"low": low, "high": high, "nominal": high - low, "coverage": float(np.mean(inside))}
    accuracy = model["direction_accuracy"]
    out["beats"] = {
        "mae": model["mae_close"] < naive["mae_close"],
        "direction": accuracy is not None and accuracy > DIRECTION_REFERENCE,
        "crps": "crps_close" in model and model["crps_close"] < naive["crps_close"],
    }
    return out


def compare_with_persistence(last_close: float, predicted: np.ndarray, actual: np.ndarray) -> dict[str, object]:
    """Point-forecast metrics of the model and of persistence on the same rows (no CRPS, no band)."""
    return score_forecast(last_close, predicted, actual)
