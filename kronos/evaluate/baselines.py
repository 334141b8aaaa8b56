"""Path baselines: forecasts of the close as sample paths from the lookback closes alone (names are config values).

The registry of path forecasts (the accuracy and price tasks; ``evaluate.baselines``). The other kinds of
forecast keep their own registry beside the task that scores them: volatility baselines in
``tasks/volatility.py`` (``VOL_BASELINES``), cross-sectional return rules in ``tasks/returns.py``
(``RETURN_RULES``), generators in ``tasks/generation.py`` (``GEN_BASELINES``). A name means one estimator
everywhere: ``hist_vol`` is :func:`hist_vol_sigma` in every registry.

* ``naive``: the last close carried forward (one deterministic path).
* ``drift``: the random walk with drift's point forecast, ``c_L + h (c_L - c_1) / (L - 1)``: the
  lookback's average one-step change continued (one deterministic path).
* ``hist_vol``: a log-normal random walk with the lookback's volatility and no drift,
  ``c_L exp(sigma * (Z_1 + ... + Z_h))`` with ``sigma`` = :func:`hist_vol_sigma`;
  its median is the last close, so it is the naive forecast with honest uncertainty around it.
  It draws as many paths as the models, so sample-size effects on interval metrics are shared.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from kronos import scores

BASELINES = ("naive", "drift", "hist_vol")
# The path baselines whose point forecast carries what they know: hist_vol's population median is the last close
# (naive's path), so its sampled median is naive plus noise, and a task scored on point forecasts alone (price)
# would pick its best baseline among that noise.
POINT_BASELINES = ("naive", "drift")


def naive_paths(hist_close: np.ndarray, horizon: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """hist_close [N, L] -> [N, 1, H]: the last close at every step."""
    return scores.naive_paths(np.asarray(hist_close, dtype=np.float64)[:, -1], horizon)


def drift_paths(hist_close: np.ndarray, horizon: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """hist_close [N, L] -> [N, 1, H]: ``c_L + h (c_L - c_1) / (L - 1)`` for h = 1..H."""
    hist = np.asarray(hist_close, dtype=np.float64)
    if hist.shape[1] < 2:
        raise ValueError("the drift baseline needs a lookback of at least 2 rows")
    slope = (hist[:, -1] - hist[:, 0]) / (hist.shape[1] - 1)
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    return (hist[:, -1, None] + slope[:, None] * steps[None, :])[:, None, :]


def hist_vol_sigma(hist_close: np.ndarray) -> np.ndarray:
    """The ``hist_vol`` estimator: sample std (ddof 1, demeaned) of the lookback's close log returns: [N, L] -> [N]."""
    hist = np.asarray(hist_close, dtype=np.float64)
    if hist.shape[1] < 3:
        raise ValueError("the hist_vol baseline needs a lookback of at least 3 rows")
    return np.diff(np.log(hist), axis=1).std(axis=1, ddof=1)


def hist_vol_paths(hist_close: np.ndarray, horizon: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """hist_close [N, L] (positive) -> [N, S, H] log-normal random-walk paths, zero log drift."""
    hist = np.asarray(hist_close, dtype=np.float64)
    sigma = hist_vol_sigma(hist)
    shocks = rng.standard_normal((hist.shape[0], samples, horizon)) * sigma[:, None, None]
    return hist[:, -1, None, None] * np.exp(np.cumsum(shocks, axis=2))


BaselineFn = Callable[[np.ndarray, int, int, np.random.Generator], np.ndarray]
BASELINE_FUNCTIONS: dict[str, BaselineFn] = {
    "naive": naive_paths,
    "drift": drift_paths,
    "hist_vol": hist_vol_paths,
}


def baseline_paths(name: str, hist_close: np.ndarray, horizon: int, samples: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Close paths [N, S', H] of baseline ``name`` (S' = 1 for the deterministic ones)."""
    try:
        fn = BASELINE_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"evaluate.baselines: unknown baseline {name!r}; choose from {list(BASELINES)}") from None
    return fn(hist_close, horizon, samples, rng)
