"""Forecast scores from sample paths, defined once (web UI, CLI, evaluate stage and the paper's tasks).

Pure numpy: every function takes realised values and forecasts as arrays and returns per-element
scores, so callers average them over any axis (origins, horizon steps, series groups). Conventions,
checked against the forecasting literature and the GluonTS / Chronos benchmark code:

* **Point forecast** (:func:`point_forecast`): the *median of the sample paths*, per step (the
  minimiser of absolute error, as Chronos uses for MASE); reports name it so. One path is its own median.
* **CRPS** (:func:`crps_samples`) from S samples: the *fair* (unbiased) ensemble estimator of Ferro et
  al. (2008), ``mean_i |x_i - y| - sum_{i,j} |x_i - x_j| / (2 S (S - 1))``. Its expectation equals the
  CRPS of the distribution the samples come from for any S >= 2; the "energy form" with ``1 / (2 S^2)``
  overstates it by ``E|X - X'| / (2 S)``. One path (a deterministic forecast): its absolute error.
* **MASE scale** (:func:`mase_scale`): the in-sample one-step naive error of the lookback,
  ``mean_t |c_t - c_{t-1}|`` (non-seasonal, m = 1).
* **Weighted quantile loss** (GluonTS ``mean_wQuantileLoss``, Chronos' WQL): per level q,
  ``2 * sum pinball_q / sum |y|``; the mean over the levels.
* **PIT** (:func:`pit_values`): the randomised rank of y among the samples,
  ``(#{x_i < y} + U * (#{x_i == y} + 1)) / (S + 1)``, exactly uniform on (0, 1) for a calibrated forecast
  whatever S is (ties broken by the caller's generator).
* **Interval coverage** (:func:`covered`, :func:`interval_coverage`): y lies in the forecast's
  ``[low, high]`` quantile interval when ``low <= PIT <= high`` (central level a: ``(1 - a) / 2`` and
  ``(1 + a) / 2``). This is exactly ``high - low`` in expectation for a calibrated forecast at any S;
  counting y between the empirical sample quantiles under-covers with few samples (a calibrated
  forecast with 20 samples scores 0.45 / 0.73 / 0.82 at 50 / 80 / 90 %).
* **Direction** (:func:`direction_hits`): the sign of ``point - last`` against the sign of
  ``realised - last``; a step where either did not move has no direction (NaN, left out of the rate).
* **naive**: the forecast that carries the last value forward (:func:`naive_paths`), the reference
  of every relative score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kronos.inference.samples import sample_quantiles

POINT_FORECAST_NAME = "median of the sample paths"
DIRECTION_REFERENCE = 0.5  # a coin flip


def point_forecast(samples: np.ndarray, axis: int) -> np.ndarray:
    """The point forecast: the median of the sample paths along the sample ``axis`` (removed)."""
    return np.median(np.asarray(samples, dtype=np.float64), axis=axis)


def naive_paths(last: np.ndarray, horizon: int) -> np.ndarray:
    """The naive forecast, the last value carried forward, as one path: last [N] -> [N, 1, horizon]."""
    last = np.asarray(last, dtype=np.float64)
    return np.repeat(last[:, None, None], horizon, axis=2)


def crps_samples(samples: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Fair (unbiased) sample CRPS: samples [..., S], obs [...] -> [...].

    Uses the sorted-sample identity ``sum_{i<j} |x_i - x_j| = sum_k (2k - S + 1) x_(k)`` (k from 0), so
    the cost is O(S log S) per element instead of O(S^2). S == 1 gives ``|x - y|``.
    """
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    s = x.shape[-1]
    abs_err = np.abs(x - y[..., None]).mean(axis=-1)
    if s == 1:
        return abs_err
    ordered = np.sort(x, axis=-1)
    weights = 2.0 * np.arange(s) - s + 1.0
    spread = (ordered * weights).sum(axis=-1)  # sum over pairs i < j of |x_i - x_j|
    return abs_err - spread / (s * (s - 1))


def mase_scale(hist_close: np.ndarray) -> np.ndarray:
    """In-sample one-step naive MAE of each lookback: [N, L] closes -> [N] (NaN when L < 2 or zero).

    A lookback whose close never moves (a long suspension) has no scale: MASE is undefined there (NaN).
    """
    hist = np.asarray(hist_close, dtype=np.float64)
    if hist.shape[-1] < 2:
        return np.full(hist.shape[:-1], np.nan)
    scale = np.abs(np.diff(hist, axis=-1)).mean(axis=-1)
    return np.where(scale > 0, scale, np.nan)


def quantile_loss(quantile_pred: np.ndarray, obs: np.ndarray, level: float) -> np.ndarray:
    """Quantile (pinball) loss ``max(q (y - f), (q - 1) (y - f))`` per element; arrays broadcast."""
    diff = np.asarray(obs, dtype=np.float64) - np.asarray(quantile_pred, dtype=np.float64)
    return np.maximum(level * diff, (level - 1.0) * diff)


def quantiles_from_samples(samples: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Empirical quantiles over the trailing sample axis: [..., S] -> [..., Q].

    The project's one quantile routine (:func:`kronos.inference.samples.sample_quantiles`, linear
    interpolation) with the sample axis last.
    """
    q = sample_quantiles(np.moveaxis(np.asarray(samples, dtype=np.float64), -1, 0), levels)
    return np.moveaxis(q, 0, -1)


def weighted_quantile_loss(quantile_pred: np.ndarray, obs: np.ndarray, levels: Sequence[float]) -> float:
    """GluonTS/Chronos WQL: quantile_pred [N, Q], obs [N] -> mean over q of ``2 sum pinball_q / sum |y|``.

    NaN when ``sum |y|`` is zero or there are no elements.
    """
    y = np.asarray(obs, dtype=np.float64)
    denom = np.abs(y).sum()
    if y.size == 0 or denom <= 0:
        return float("nan")
    losses = [2.0 * quantile_loss(quantile_pred[..., k], y, q).sum() / denom for k, q in enumerate(levels)]
    return float(np.mean(losses))


def pit_values(samples: np.ndarray, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised probability integral transform: samples [..., S], obs [...] -> [...] in (0, 1)."""
    x = np.asarray(samples, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)[..., None]
    below = (x < y).sum(axis=-1)
    ties = (x == y).sum(axis=-1)
    u = rng.random(below.shape)
    return (below + u * (ties + 1)) / (x.shape[-1] + 1)


def central_bounds(level: float) -> tuple[float, float]:
    """The PIT bounds of the central ``level`` interval: ``((1 - level) / 2, (1 + level) / 2)``."""
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


def covered(pit: np.ndarray, low: float, high: float) -> np.ndarray:
    """Whether each realised value lies in the forecast's ``[low, high]`` quantile interval: PIT [...] -> bool."""
    pit = np.asarray(pit, dtype=np.float64)
    return (pit >= low) & (pit <= high)


def interval_coverage(pit: np.ndarray, low: float, high: float) -> float:
    """Share of finite PIT values inside ``[low, high]`` (nominal: ``high - low``); NaN when none."""
    pit = np.asarray(pit, dtype=np.float64)
    return nanmean(np.where(np.isfinite(pit), covered(pit, low, high), np.nan))


def pit_histogram(pit: np.ndarray, bins: int) -> list[float]:
    """Fraction of (finite) PIT values per equal-width bin of (0, 1); uniform = ``1 / bins`` each."""
    values = np.asarray(pit, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan")] * bins
    counts, _ = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return (counts / values.size).tolist()


def direction_hits(point: np.ndarray, last: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Per step: 1.0 when ``sign(point - last) == sign(realised - last)``, 0.0 when not, NaN when undefined.

    point, realised [..., H]; last [...] (a scalar for one series). Undefined (left out of every rate):
    a forecast with no direction (predicted change exactly 0, e.g. the naive forecast) or a realised
    change of 0 (a flat close, e.g. a suspended stock).
    """
    last = np.asarray(last, dtype=np.float64)[..., None]
    pred = np.sign(np.asarray(point, dtype=np.float64) - last)
    real = np.sign(np.asarray(realised, dtype=np.float64) - last)
    hits = (pred == real).astype(np.float64)
    return np.where((pred == 0) | (real == 0) | ~np.isfinite(pred) | ~np.isfinite(real), np.nan, hits)


def direction_accuracy(point: np.ndarray, last: np.ndarray, realised: np.ndarray) -> tuple[float, int]:
    """Share of correct signs over the steps with a direction, and how many: (accuracy or NaN, count)."""
    hits = direction_hits(point, last, realised)
    return nanmean(hits), int(np.isfinite(hits).sum())


def nanmean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN when there are none), without numpy's empty-slice warning."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def geometric_mean_ratio(model: np.ndarray, reference: np.ndarray, groups: np.ndarray) -> float:
    """Geometric mean over groups (series) of ``mean(model) / mean(reference)`` within each group.

    model, reference: per-element scores [N] (NaN = missing); groups: [N] series ids. Series where
    either mean is missing, zero or not finite are left out. Below 1: better than the reference.
    """
    model = np.asarray(model, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    groups = np.asarray(groups)
    logs = []
    for g in np.unique(groups):
        sel = groups == g
        ok = sel & np.isfinite(model) & np.isfinite(reference)
        if not ok.any():
            continue
        num, den = model[ok].mean(), reference[ok].mean()
        if num > 0 and den > 0:
            logs.append(np.log(num / den))
    return float(np.exp(np.mean(logs))) if logs else float("nan")
