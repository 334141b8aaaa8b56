"""Realised-volatility forecasting (the paper's volatility task) and its econometric baselines.

Realised variance over the horizon: the sum of the squared log returns of the closes, from the last
observed close through the steps that exist (a missing close is carried forward, so a return across
a gap covers the steps of the gap and trailing missing steps add nothing). A model's forecast is the
same sum over each sample path (on the same steps), averaged over the paths. Baselines forecast a
variance per step from the lookback closes and sum it over the steps up to the last one that exists:

* ``hist_vol``: the lookback's mean squared log return per step (trailing realised variance scaled).
* ``ewma``: RiskMetrics, ``s2_t = lambda s2_(t-1) + (1 - lambda) r_(t-1)^2`` with lambda 0.94, started
  at the lookback's mean squared return; flat over the horizon.
* ``garch``: ARCH(p) or GARCH(p, q) with p, q in {1, 2, 3} (zero mean, normal errors) chosen by BIC
  per series at its first origin, on the lookback's log returns, through the ``arch`` package; its
  parameters are re-estimated every ``refit_every`` origins of the series on the data up to that
  origin and, in between, held fixed while the variance is filtered through the newer lookback.

Scores: ``mae`` of volatility (square roots), ``qlike`` = mean of ``y/f - log(y/f) - 1`` (Patton 2011,
robust to noise in the realised proxy), the Mincer–Zarnowitz regression of the realised on the
forecast variance (``mz_alpha``, ``mz_beta``, ``mz_p`` of the joint test alpha = 0, beta = 1, and
its ``r2``). Origins whose realised variance is 0 (no move at all) have no QLIKE and are counted.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kronos.evaluate.tasks.comparison import per_date
from kronos.stats import mincer_zarnowitz

log = logging.getLogger(__name__)

EWMA_LAMBDA = 0.94
GARCH_ORDERS: tuple[tuple[int, int], ...] = tuple((p, 0) for p in (1, 2, 3)) + tuple(
    (p, q) for p in (1, 2, 3) for q in (1, 2, 3))       # (ARCH lags p, GARCH lags q); q = 0 is ARCH(p)
SCALE = 100.0  # arch fits returns in percent (its optimiser is tuned for that scale)
VOL_BASELINES: tuple[str, ...] = ("hist_vol", "ewma", "garch")


def realised_variance(last_close: np.ndarray, closes: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Sum of squared log returns from the last close through the ``observed`` steps.

    A step that is not observed carries the previous close (the last observed close for the first
    step), so a return across a gap is counted once and trailing missing steps add nothing.

    Args:
        last_close: [N]; closes: [N, H] or [N, S, H] (sample paths); observed: bool [N, H].

    Returns:
        [N] or [N, S]; NaN where no step is observed.
    """
    closes = np.asarray(closes, dtype=np.float64)
    paths = closes if closes.ndim == 3 else closes[:, None, :]                     # [N, S, H]
    obs = np.asarray(observed, dtype=bool)[:, None, :]                            # [N, 1, H]
    prev = np.broadcast_to(np.asarray(last_close, dtype=np.float64)[:, None], paths.shape[:2]).copy()
    total = np.zeros(paths.shape[:2])
    with np.errstate(invalid="ignore", divide="ignore"):
        for h in range(paths.shape[2]):
            now = np.where(obs[:, :, h], paths[:, :, h], prev)
            total += np.log(now / prev) ** 2
            prev = now
    total = np.where(obs.any(axis=2), total, np.nan)
    return total if closes.ndim == 3 else total[:, 0]


def horizon_variance(step_variance: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """A per-step variance forecast [N, H] summed over the steps up to the last observed one -> [N]."""
    obs = np.asarray(observed, dtype=bool)
    upto = np.cumsum(obs[:, ::-1], axis=1)[:, ::-1] > 0            # steps at or before the last observed
    return np.where(obs.any(axis=1), (np.asarray(step_variance) * upto).sum(axis=1), np.nan)


def lookback_returns(hist_close: np.ndarray) -> np.ndarray:
    """Log returns of the lookback closes: [N, L] -> [N, L - 1]."""
    return np.diff(np.log(np.asarray(hist_close, dtype=np.float64)), axis=-1)


def hist_vol_variance(hist_close: np.ndarray, horizon: int) -> np.ndarray:
    """``hist_vol``: the lookback's mean squared log return at every step: [N, L] -> [N, H]."""
    r = lookback_returns(hist_close)
    return np.repeat((r ** 2).mean(axis=1, keepdims=True), horizon, axis=1)


def ewma_variance(hist_close: np.ndarray, horizon: int, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """``ewma``: RiskMetrics variance after the lookback, flat over the horizon: [N, L] -> [N, H]."""
    r = lookback_returns(hist_close)
    s2 = (r ** 2).mean(axis=1)
    for k in range(r.shape[1]):
        s2 = lam * s2 + (1.0 - lam) * r[:, k] ** 2
    return np.repeat(s2[:, None], horizon, axis=1)


@dataclass
class GarchBaseline:
    """The ``garch`` baseline with its fits cached per series (order, parameters) and per (series, origin).

    Attributes:
        refit_every: re-estimate the parameters at every ``refit_every``-th origin of a series (1: all).
        fits, filters, failures: work done (full estimations, fixed-parameter filters, fits that failed and
            fell back to ``hist_vol``); seconds: time spent.
    """

    refit_every: int = 10
    orders: dict[str, tuple[int, int]] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    cache: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    fits: int = 0
    filters: int = 0
    failures: int = 0
    seconds: float = 0.0

    def _model(self, r: np.ndarray, order: tuple[int, int]) -> Any:
        from arch import arch_model

        return arch_model(r * SCALE, mean="Zero", vol="GARCH", p=order[0], q=order[1], dist="normal",
                          rescale=False)

    def _fit(self, r: np.ndarray, order: tuple[int, int]) -> Any:
        self.fits += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of short samples; BIC still ranks them
            return self._model(r, order).fit(disp="off", show_warning=False)

    def _select(self, r: np.ndarray) -> tuple[tuple[int, int], Any]:
        results = []
        for order in GARCH_ORDERS:
            try:
                res = self._fit(r, order)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if np.isfinite(res.bic):
                results.append((res.bic, order, res))
        if not results:
            raise ValueError("no ARCH/GARCH order could be fitted")
        _, order, res = min(results, key=lambda x: x[0])
        return order, res

    def forecast(self, series: str, origin: int, hist_close: np.ndarray, horizon: int) -> np.ndarray:
        """Per-step variance forecast [H] of one origin (log-return units); call origins in date order."""
        key = (series, int(origin))
        if key in self.cache:
            return self.cache[key]
        start = time.perf_counter()
        r = lookback_returns(np.asarray(hist_close, dtype=np.float64)[None])[0]
        count = self.seen.get(series, 0)
        self.seen[series] = count + 1
        try:
            if series not in self.orders:
                order, res = self._select(r)
                self.orders[series], self.params[series] = order, np.asarray(res.params)
            elif count % self.refit_every == 0:
                res = self._fit(r, self.orders[series])
                self.params[series] = np.asarray(res.params)
            else:
                self.filters += 1
                res = self._model(r, self.orders[series]).fix(self.params[series])
            variance = np.asarray(res.forecast(horizon=horizon, reindex=False).variance.values[-1]) / SCALE ** 2
            if not np.isfinite(variance).all() or (variance <= 0).any():
                raise ValueError("non-positive variance forecast")
        except (ValueError, np.linalg.LinAlgError) as err:
            self.failures += 1
            log.debug("garch baseline: %s at %s fell back to hist_vol (%s)", series, origin, err)
            variance = hist_vol_variance(np.asarray(hist_close)[None], horizon)[0]
        self.seconds += time.perf_counter() - start
        self.cache[key] = variance
        return variance

    def cost(self) -> dict[str, Any]:
        """Work done so far (for metrics.json): fits, filters, failures, seconds, orders chosen."""
        chosen: dict[str, int] = {}
        for p, q in self.orders.values():
            name = f"ARCH({p})" if q == 0 else f"GARCH({p},{q})"
            chosen[name] = chosen.get(name, 0) + 1
        return {"fits": self.fits, "filters": self.filters, "failures": self.failures,
                "seconds": round(self.seconds, 3), "refit_every": self.refit_every, "orders_chosen": chosen}


def garch_variance(garch: GarchBaseline, instruments: np.ndarray, dates: np.ndarray, hist_close: np.ndarray,
                   horizon: int) -> np.ndarray:
    """``garch`` per-step variance forecasts [N, H] of every origin (origins in date order per series)."""
    out = np.empty((len(instruments), horizon))
    for i in np.lexsort((np.asarray(dates), np.asarray(instruments, dtype=str))):
        out[i] = garch.forecast(str(instruments[i]), int(dates[i]), hist_close[i], horizon)
    return out


def qlike(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Per-origin QLIKE ``y/f - log(y/f) - 1`` (0 for a perfect forecast); NaN where y or f <= 0."""
    f = np.asarray(forecast, dtype=np.float64)
    y = np.asarray(realised, dtype=np.float64)
    ok = (f > 0) & (y > 0) & np.isfinite(f) & np.isfinite(y)
    ratio = np.where(ok, y, 1.0) / np.where(ok, f, 1.0)
    return np.where(ok, ratio - np.log(ratio) - 1.0, np.nan)


def score_volatility(forecast: np.ndarray, realised: np.ndarray, dates: np.ndarray) -> dict[str, Any]:
    """The volatility task's row for one forecaster.

    Args:
        forecast, realised: [N] horizon variances (log-return units); dates: [N].

    Returns:
        ``mae``, ``r2``, ``qlike``, ``mz_alpha``, ``mz_beta``, ``mz_p``, ``origins`` (scored),
        ``zero_realised`` (origins without a move), and ``_loss`` {date: mean QLIKE} for the DM test.
    """
    f = np.asarray(forecast, dtype=np.float64)
    y = np.asarray(realised, dtype=np.float64)
    ok = np.isfinite(f) & np.isfinite(y) & (f > 0)
    losses = qlike(f, y)
    days, daily = per_date(losses, dates)
    mz = mincer_zarnowitz(f[ok], y[ok]) if ok.sum() >= 3 else {"alpha": np.nan, "beta": np.nan, "r2": np.nan,
                                                                 "p": np.nan}
    return {
        "mae": float(np.mean(np.abs(np.sqrt(f[ok]) - np.sqrt(y[ok])))) if ok.any() else float("nan"),
        "r2": float(mz["r2"]),
        "qlike": float(np.nanmean(losses)) if np.isfinite(losses).any() else float("nan"),
        "mz_alpha": float(mz["alpha"]),
        "mz_beta": float(mz["beta"]),
        "mz_p": float(mz["p"]),
        "origins": int(ok.sum()),
        "zero_realised": int((ok & (y <= 0)).sum()),
        "_loss": {int(d): float(v) for d, v in zip(days, daily)},
    }
