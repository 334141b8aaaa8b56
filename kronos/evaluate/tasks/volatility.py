"""Realised-volatility forecasting (the paper's volatility task) and its econometric baselines.

Realised variance over the horizon: the sum of the squared log returns of the closes, from the last
observed close through the steps that exist (a missing close is carried forward, so a return across
a gap covers the steps of the gap and trailing missing steps add nothing). A model's forecast is the
same sum over each sample path (on the same steps), averaged over the paths. Baselines forecast a
variance per step and sum it over the steps up to the last one that exists (:data:`VOL_BASELINES`,
the task's registry; each name is one estimator):

* ``hist_vol``: the square of :func:`kronos.evaluate.baselines.hist_vol_sigma` (the sample std, ddof 1,
  of the lookback's close log returns: the same estimator as the ``hist_vol`` path baseline).
* ``ewma``: RiskMetrics, ``s2_t = lambda s2_(t-1) + (1 - lambda) r_(t-1)^2`` with lambda 0.94, started
  at the lookback's mean squared return; flat over the horizon.
* ``garch``: GARCH(1,1) (zero mean, Student-t errors, ``arch``) estimated once on the *training split*
  (where the model learns its weights): the persistence (alpha, beta) from one fit on every series'
  training returns, each scaled to unit variance (pooled: a few hundred returns per series estimate it
  poorly; on the synthetic market per-series fits lost to EWMA, the pooled one beats it), and each
  series' level from its own mean squared training return (variance targeting). The parameters are then
  held fixed while the variance is filtered through each origin's lookback (started at the series'
  level) and forecast over the horizon. A series with fewer than ``MIN_TRAIN_RETURNS`` training returns
  (listed in ``garch_cost``) takes the pooled persistence at its lookback's level; without a training split
  the baseline is left out with the reason, never fitted on the lookback.

Invalid forecasts: a model's forecast of an origin is invalid when a sample path holds a close that is
not a finite positive price on a scored step (its log return does not exist). Every forecaster is scored on
the same origins: an invalid forecast is counted (``invalid``) and scored as a failure, with the worst
QLIKE and the worst volatility error any forecaster has at that origin; it is left out of the
Mincer–Zarnowitz regression only (``mz_origins``).

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
from typing import Any, Mapping

import numpy as np

from kronos.evaluate.baselines import hist_vol_sigma
from kronos.evaluate.tasks.comparison import per_date
from kronos.stats import mincer_zarnowitz

log = logging.getLogger(__name__)

EWMA_LAMBDA = 0.94
SCALE = 100.0  # arch fits returns in percent (its optimiser is tuned for that scale)
MIN_TRAIN_RETURNS = 20  # a series' level (its mean squared training return) needs a month of returns
VOL_BASELINES: tuple[str, ...] = ("hist_vol", "ewma", "garch")


def realised_variance(last_close: np.ndarray, closes: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Sum of squared log returns from the last close through the ``observed`` steps.

    A step that is not observed carries the previous close (the last observed close for the first
    step), so a return across a gap is counted once and trailing missing steps add nothing.

    Args:
        last_close: [N]; closes: [N, H] or [N, S, H] (sample paths); observed: bool [N, H].

    Returns:
        [N] or [N, S]; NaN where no step is observed or a close on an observed step is not a positive price.
    """
    closes = np.asarray(closes, dtype=np.float64)
    paths = closes if closes.ndim == 3 else closes[:, None, :]                     # [N, S, H]
    obs = np.asarray(observed, dtype=bool)[:, None, :]                            # [N, 1, H]
    prev = np.broadcast_to(np.asarray(last_close, dtype=np.float64)[:, None], paths.shape[:2]).copy()
    total = np.zeros(paths.shape[:2])
    with np.errstate(invalid="ignore", divide="ignore"):
        for h in range(paths.shape[2]):
            now = np.where(obs[:, :, h], paths[:, :, h], prev)
            bad = ~(np.isfinite(now) & (now > 0))
            total += np.where(bad, np.nan, np.log(np.where(bad, 1.0, now) / prev) ** 2)
            prev = np.where(bad, prev, now)
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
    """``hist_vol``: the square of the lookback's ``hist_vol_sigma`` at every step: [N, L] -> [N, H]."""
    return np.repeat((hist_vol_sigma(hist_close) ** 2)[:, None], horizon, axis=1)


def ewma_variance(hist_close: np.ndarray, horizon: int, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """``ewma``: RiskMetrics variance after the lookback, flat over the horizon: [N, L] -> [N, H]."""
    r = lookback_returns(hist_close)
    s2 = (r ** 2).mean(axis=1)
    for k in range(r.shape[1]):
        s2 = lam * s2 + (1.0 - lam) * r[:, k] ** 2
    return np.repeat(s2[:, None], horizon, axis=1)


def _fit_garch11(returns: np.ndarray) -> tuple[float, float, float]:
    """(omega, alpha, beta) of a zero-mean GARCH(1,1)-t fitted on log returns [T] (omega in log-return units)."""
    from arch import arch_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes; a failed fit raises or gives non-finite values
        res = arch_model(returns * SCALE, mean="Zero", vol="GARCH", p=1, q=1, dist="t",
                         rescale=False).fit(disp="off", show_warning=False)
    omega, alpha, beta = (float(res.params[k]) for k in ("omega", "alpha[1]", "beta[1]"))
    if not all(np.isfinite((omega, alpha, beta))) or omega <= 0 or alpha < 0 or beta < 0 or alpha + beta >= 1:
        raise ValueError(f"GARCH(1,1) fit outside the stationary region (alpha {alpha:.3g}, beta {beta:.3g})")
    return omega / SCALE ** 2, alpha, beta


def _train_returns(train_close: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Finite close log returns of each series' training rows (non-positive or missing closes break pairs)."""
    out = {}
    for name, close in train_close.items():
        c = np.asarray(close, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.diff(np.log(np.where(c > 0, c, np.nan)))
        out[str(name)] = r[np.isfinite(r)]
    return out


@dataclass
class GarchBaseline:
    """The ``garch`` baseline: GARCH(1,1) persistence pooled over the training split, filtered per origin.

    Attributes:
        params: series -> (omega, alpha, beta) in log-return units (alpha, beta pooled; omega sets the level).
        pooled: (alpha, beta) of the pooled fit, or None when it failed or no series had training returns.
        fits, failures, seconds: estimation work done.
    """

    params: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    pooled: tuple[float, float] | None = None
    fits: int = 0
    failures: int = 0
    seconds: float = 0.0

    @classmethod
    def fit(cls, train_close: Mapping[str, np.ndarray]) -> "GarchBaseline":
        """Estimate on each series' training closes ``{series: [T] closes}`` (see the module docstring)."""
        start = time.perf_counter()
        out = cls()
        returns = {k: r for k, r in _train_returns(train_close).items() if len(r) >= MIN_TRAIN_RETURNS and r.std() > 0}
        if returns:
            out.fits += 1
            try:
                _, alpha, beta = _fit_garch11(np.concatenate([r / r.std() for r in returns.values()]))
                out.pooled = (alpha, beta)
            except (ValueError, np.linalg.LinAlgError) as err:
                out.failures += 1
                log.warning("evaluate: the garch baseline could not be estimated on the training split (%s)", err)
        if out.pooled is not None:
            alpha, beta = out.pooled
            out.params = {k: (float(np.mean(r ** 2)) * (1 - alpha - beta), alpha, beta) for k, r in returns.items()}
        out.seconds = time.perf_counter() - start
        return out

    def variance(self, instruments: np.ndarray, hist_close: np.ndarray, horizon: int) -> np.ndarray:
        """Per-step variance forecasts [N, H] (log-return units): each lookback [N, L] filtered with its series'
        parameters; a series without training returns takes the pooled persistence at its lookback's mean squared
        return (counted by :meth:`cost`). Raises ValueError when nothing was estimated (``pooled`` is None)."""
        if self.pooled is None:
            raise ValueError("the garch baseline has no parameters: it was not estimated on a training split")
        r = lookback_returns(hist_close)                                           # [N, L - 1]
        names = np.asarray(instruments).astype(str)
        alpha, beta = self.pooled
        own = np.array([self.params[n][0] if n in self.params else np.nan for n in names])
        omega = np.where(np.isfinite(own), own, (r ** 2).mean(axis=1) * (1 - alpha - beta))
        level = omega / (1.0 - alpha - beta)                                       # unconditional variance
        s2 = level.copy()
        for k in range(r.shape[1]):
            s2 = omega + alpha * r[:, k] ** 2 + beta * s2                           # variance of the next step
        steps = np.arange(horizon, dtype=np.float64)
        return level[:, None] + (alpha + beta) ** steps[None, :] * (s2 - level)[:, None]

    def cost(self, instruments: np.ndarray | None = None) -> dict[str, Any]:
        """Work done (for metrics.json): fits, failures, seconds, the pooled persistence, series without parameters."""
        missing = sorted(set(np.asarray(instruments).astype(str)) - set(self.params)) if instruments is not None else []
        return {"fits": self.fits, "failures": self.failures, "seconds": round(self.seconds, 3),
                "estimated_on": "training split", "series": len(self.params), "series_without_parameters": missing,
                "pooled_alpha_beta": list(self.pooled) if self.pooled is not None else None}


def qlike(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Per-origin QLIKE ``y/f - log(y/f) - 1`` (0 for a perfect forecast); NaN where y or f <= 0."""
    f = np.asarray(forecast, dtype=np.float64)
    y = np.asarray(realised, dtype=np.float64)
    ok = (f > 0) & (y > 0) & np.isfinite(f) & np.isfinite(y)
    ratio = np.where(ok, y, 1.0) / np.where(ok, f, 1.0)
    return np.where(ok, ratio - np.log(ratio) - 1.0, np.nan)


def _vol_error(forecast: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Per-origin ``|sqrt(f) - sqrt(y)|``; NaN where either is missing or f <= 0."""
    f = np.asarray(forecast, dtype=np.float64)
    y = np.asarray(realised, dtype=np.float64)
    ok = np.isfinite(f) & np.isfinite(y) & (f > 0) & (y >= 0)
    return np.where(ok, np.abs(np.sqrt(np.where(ok, f, 0.0)) - np.sqrt(np.where(ok, y, 0.0))), np.nan)


def score_volatility(forecast: np.ndarray, realised: np.ndarray, dates: np.ndarray,
                     invalid: np.ndarray | None = None, worst_qlike: np.ndarray | None = None,
                     worst_error: np.ndarray | None = None) -> dict[str, Any]:
    """The volatility task's row for one forecaster.

    Args:
        forecast, realised: [N] horizon variances (log-return units); dates: [N].
        invalid: bool [N], origins whose forecast is invalid (see the module docstring); worst_qlike,
            worst_error: [N] the failure scores given to them (from :func:`score_volatility_table`).

    Returns:
        ``mae``, ``r2``, ``qlike``, ``mz_alpha``, ``mz_beta``, ``mz_p``, ``origins`` (scored), ``invalid``,
        ``mz_origins``, ``zero_realised`` (origins without a move), and ``_loss`` {date: mean QLIKE} for DM.
    """
    f = np.asarray(forecast, dtype=np.float64)
    y = np.asarray(realised, dtype=np.float64)
    bad = np.zeros(len(f), bool) if invalid is None else np.asarray(invalid, dtype=bool)
    ok = np.isfinite(f) & np.isfinite(y) & (f > 0) & ~bad
    losses, errors = qlike(f, y), _vol_error(f, y)
    if bad.any():
        losses = np.where(bad, worst_qlike, losses)
        errors = np.where(bad, worst_error, errors)
    days, daily = per_date(losses, dates)
    mz = mincer_zarnowitz(f[ok], y[ok]) if ok.sum() >= 3 else {"alpha": np.nan, "beta": np.nan, "r2": np.nan,
                                                                 "p": np.nan}
    return {
        "mae": float(np.nanmean(errors)) if np.isfinite(errors).any() else float("nan"),
        "r2": float(mz["r2"]),
        "qlike": float(np.nanmean(losses)) if np.isfinite(losses).any() else float("nan"),
        "mz_alpha": float(mz["alpha"]),
        "mz_beta": float(mz["beta"]),
        "mz_p": float(mz["p"]),
        "origins": int(np.isfinite(y).sum()),
        "invalid": int((bad & np.isfinite(y)).sum()),
        "mz_origins": int(ok.sum()),
        "zero_realised": int((np.isfinite(y) & (y <= 0)).sum()),
        "_loss": {int(d): float(v) for d, v in zip(days, daily)},
    }


def score_volatility_table(forecasts: Mapping[str, np.ndarray], invalid: Mapping[str, np.ndarray],
                           realised: np.ndarray, dates: np.ndarray) -> dict[str, dict[str, Any]]:
    """Rows of every forecaster on the same origins, invalid forecasts scored as failures.

    Args:
        forecasts: name -> [N] horizon variance; invalid: name -> bool [N] (missing names: all valid).
        realised: [N]; dates: [N].

    Returns:
        name -> :func:`score_volatility` row; an invalid origin gets the worst QLIKE and volatility error
        that any forecaster with a valid forecast scored there (NaN when none has one).
    """
    valid = {n: ~np.asarray(invalid.get(n, np.zeros(len(realised), bool)), dtype=bool) for n in forecasts}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN origins (no realised move) stay NaN
        worst_q = np.nanmax(np.stack([np.where(valid[n], qlike(f, realised), np.nan)
                                      for n, f in forecasts.items()]), axis=0)
        worst_e = np.nanmax(np.stack([np.where(valid[n], _vol_error(f, realised), np.nan)
                                      for n, f in forecasts.items()]), axis=0)
    return {n: score_volatility(f, realised, dates, ~valid[n], worst_q, worst_e) for n, f in forecasts.items()}
