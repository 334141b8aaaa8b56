"""Forecast quality against the realised future, beside the naive forecast (the last close carried forward).

Every score is :mod:`kronos.scores`'s, so the page, the CLI and the evaluate stage agree on the same
samples. What a trader reads off these numbers:
- the point forecast is the median of the sample paths (``point``, named on the page);
- direction accuracy is scored only on steps where both the forecast and the market moved away from
  the last close; a forecast with no direction (naive: every step equals the last close) gets
  ``None`` ("n/a"), not 0 %. Its reference is a coin flip, 50 %.
- MAE of the close beside the naive forecast's MAE;
- the fair CRPS of the close (for the single-valued naive forecast it equals its MAE) and how often
  the actual close fell inside the band's quantile interval (from the PIT), beside its nominal coverage;
- ``beats`` says, per measure, whether the model did better than its reference: only then the page
  highlights it.
"""

from __future__ import annotations

import numpy as np

from kronos import scores

# Ties of the actual with a sample are broken at random in the PIT; a fixed seed keeps a page's
# numbers reproducible.
PIT_SEED = 0


def close_metrics(last_close: float, close_samples: np.ndarray, actual: np.ndarray) -> dict[str, object]:
    """MAE of the point forecast, fair CRPS and direction accuracy of one forecaster.

    Args:
        last_close: close of the last history row.
        close_samples: sample paths of the close [S, h] (S = 1: a deterministic forecast).
        actual: realised closes [h].
    """
    samples = np.asarray(close_samples, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    point = scores.point_forecast(samples, axis=0)
    accuracy, steps = scores.direction_accuracy(point, last_close, act)
    return {
        "mae_close": float(np.mean(np.abs(point - act))),
        "crps_close": float(np.mean(scores.crps_samples(samples.T, act))),
        "direction_accuracy": accuracy if np.isfinite(accuracy) else None,
        "direction_steps": steps,
    }


def score_forecast(
    last_close: float,
    close_samples: np.ndarray,
    actual: np.ndarray,
    band: tuple[float, float] | None = None,
) -> dict[str, object]:
    """Scores of the model and of the naive forecast on the rows with an actual, and which the model beats.

    Args:
        last_close: close of the last history row.
        close_samples: the model's sample paths of the close [S, H]; only the first h steps are scored.
        actual: realised closes [h <= H].
        band: (low level, high level) of the page's band (adds its coverage from the PIT).
    """
    act = np.asarray(actual, dtype=np.float64)
    h = len(act)
    samples = np.asarray(close_samples, dtype=np.float64)[:, :h]
    model = close_metrics(last_close, samples, act)
    naive = close_metrics(last_close, scores.naive_paths(np.array([last_close]), h)[0], act)
    out: dict[str, object] = {"rows": h, "point": scores.POINT_FORECAST_NAME, "model": model, "naive": naive,
                              "direction_reference": scores.DIRECTION_REFERENCE}
    if band is not None:
        low, high = band
        pit = scores.pit_values(samples.T, act, np.random.default_rng(PIT_SEED))
        out["band"] = {"low": low, "high": high, "nominal": high - low,
                       "coverage": scores.interval_coverage(pit, low, high)}
    accuracy = model["direction_accuracy"]
    out["beats"] = {
        "mae": model["mae_close"] < naive["mae_close"],
        "direction": accuracy is not None and accuracy > scores.DIRECTION_REFERENCE,
        "crps": model["crps_close"] < naive["crps_close"],
    }
    return out
