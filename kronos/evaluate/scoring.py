"""Score close-price sample paths against realised closes, per origin and horizon step, and summarise.

``score_paths`` turns one forecaster's paths into per-element score arrays [N, H]; ``summarise``
averages them over any subset of origins into the numbers of ``metrics.json`` (see
:mod:`kronos.scores` for every definition; the direction t comes from :func:`kronos.stats.mean_t`).

Invalid forecasts: an origin whose paths hold a close <= 0 (on a step that is scored) is an invalid
forecast (non-finite values are refused outright: the model diverged). ``score_paths`` marks it
(``Scores.invalid``) and scores the paths as they are; :func:`fail_invalid`, given every
forecaster's scores of the same origins, then scores it as a failure: per step the worst absolute error
and CRPS that any forecaster has there, not covered (PIT 1), direction missed. ``summarise`` counts
them (``invalid``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kronos import scores as m
from kronos.evaluate.tasks.comparison import valid_forecasts
from kronos.stats import mean_t


@dataclass
class Scores:
    """Per-element scores of one forecaster on N origins x H steps (NaN = undefined, excluded).

    Attributes:
        samples: S, paths per origin (1 = a deterministic point forecast).
        point: float64 [N, H] point forecast (median of the paths).
        abs_err, scaled_err: [N, H] |point - y| and the same over the lookback's MASE scale.
        crps, scaled_crps: [N, H] fair sample CRPS, raw and over the MASE scale.
        quantiles: [N, H, Q] sample quantiles at the WQL levels.
        covered: level -> float [N, H] 1 inside / 0 outside / NaN where the realised close is missing
            (None for one-path forecasts: they have no interval).
        pit: [N, H] randomised PIT (None for one-path forecasts).
        direction: [N, H] 1 hit / 0 miss / NaN undefined.
        invalid: bool [N] origins whose forecast is invalid (see the module docstring).
    """

    samples: int
    point: np.ndarray
    abs_err: np.ndarray
    scaled_err: np.ndarray
    crps: np.ndarray
    scaled_crps: np.ndarray
    quantiles: np.ndarray
    covered: dict[float, np.ndarray] | None
    pit: np.ndarray | None
    direction: np.ndarray
    invalid: np.ndarray

    @property
    def probabilistic(self) -> bool:
        return self.samples > 1


def score_paths(paths: np.ndarray, hist_close: np.ndarray, future_close: np.ndarray, *,
                coverage_levels: Sequence[float], quantile_levels: Sequence[float],
                rng: np.random.Generator) -> Scores:
    """Score close paths [N, S, H] against future_close [N, H]; hist_close [N, L] gives the scale.

    A missing realised close (NaN: the series did not trade at that step) makes every score of that
    element NaN, so summaries average the steps that exist.

    An origin whose paths hold a price <= 0 is marked invalid (see the module docstring).

    Raises:
        ValueError: paths of the wrong shape or with non-finite values (a diverged model, not a forecast).
    """
    paths = np.asarray(paths, dtype=np.float64)
    n, h = future_close.shape
    if paths.ndim != 3 or paths.shape[0] != n or paths.shape[2] != h:
        raise ValueError(f"forecast paths have shape {paths.shape}; expected [{n}, S, {h}]")
    bad = int((~np.isfinite(paths)).sum())
    if bad:
        raise ValueError(f"{bad} forecast values are not finite (NaN/inf): the model diverged on these windows")
    observed = np.isfinite(future_close)
    invalid = ~valid_forecasts(paths, observed)
    samples_last = np.moveaxis(paths, 1, -1)                    # [N, H, S]
    scale = m.mase_scale(hist_close)[:, None]                   # [N, 1]
    point = m.point_forecast(paths, axis=1)                     # [N, H]
    abs_err = np.abs(point - future_close)
    crps = m.crps_samples(samples_last, future_close)
    probabilistic = paths.shape[1] > 1
    pit = np.where(observed, m.pit_values(samples_last, future_close, rng), np.nan) if probabilistic else None
    return Scores(
        samples=paths.shape[1],
        point=point,
        abs_err=abs_err,
        scaled_err=abs_err / scale,
        crps=crps,
        scaled_crps=crps / scale,
        quantiles=m.quantiles_from_samples(samples_last, quantile_levels),
        covered=({lv: np.where(observed, m.covered(pit, *m.central_bounds(lv)), np.nan) for lv in coverage_levels}
                 if pit is not None else None),
        pit=pit,
        direction=m.direction_hits(point, hist_close[:, -1], future_close),
        invalid=invalid,
    )


def fail_invalid(scores: dict[str, Scores], future_close: np.ndarray, last_close: np.ndarray) -> None:
    """Score every invalid forecast of ``scores`` (forecasters of the same origins) as a failure, in place.

    Per invalid origin and step: the worst absolute and scaled error and CRPS that any forecaster with a
    valid forecast of that origin has there, not covered (PIT 1), direction missed where the realised close
    moved. future_close [N, H] realised closes; last_close [N].
    """
    fields = ("abs_err", "scaled_err", "crps", "scaled_crps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                       # steps nobody scored stay NaN
        worst = {f: np.nanmax(np.stack([np.where(sc.invalid[:, None], np.nan, getattr(sc, f))
                                        for sc in scores.values()]), axis=0) for f in fields}
    observed = np.isfinite(future_close)
    moved = observed & (future_close != np.asarray(last_close)[:, None])
    for sc in scores.values():
        bad = sc.invalid[:, None] & observed                                   # [N, H]
        if not bad.any():
            continue
        for f in fields:
            setattr(sc, f, np.where(bad, worst[f], getattr(sc, f)))
        if sc.covered is not None:
            sc.covered = {lv: np.where(bad, 0.0, c) for lv, c in sc.covered.items()}
        if sc.pit is not None:
            sc.pit = np.where(bad, 1.0, sc.pit)
        sc.direction = np.where(sc.invalid[:, None] & moved, 0.0, sc.direction)


def direction_t_by_date(hits: np.ndarray, dates: np.ndarray) -> float:
    """t-statistic of direction accuracy against 0.5, clustered by decision date.

    hits [N, H] (1 / 0 / NaN), dates [N]. Moves on one date are shared across series (the market),
    so the hit rate is averaged per date first and the classical t (:func:`kronos.stats.mean_t`) runs
    over the dates' ``r_d - 0.5``. NaN with fewer than 3 dates or no spread.
    """
    hits = np.asarray(hits, dtype=np.float64)
    dates = np.asarray(dates)
    rates = []
    for d in np.unique(dates):
        v = hits[dates == d]
        v = v[np.isfinite(v)]
        if v.size:
            rates.append(v.mean())
    return mean_t(np.asarray(rates) - m.DIRECTION_REFERENCE).t


def _level_key(level: float) -> str:
    """``0.5`` -> ``"0.5"``: the contract's coverage keys."""
    return f"{level:g}"


def summarise(scores: Scores, future_close: np.ndarray, rows: np.ndarray | slice, *,
              coverage_levels: Sequence[float], quantile_levels: Sequence[float], pit_bins: int,
              dates: np.ndarray | None = None, per_horizon: bool = True) -> dict[str, Any]:
    """The metrics of one forecaster over the origins ``rows``.

    Returns:
        ``mae``, ``mase``, ``crps``, ``scaled_crps``, ``wql``, ``direction_accuracy`` (NaN when no
        step has a direction), ``direction_n`` (steps with a direction), ``coverage`` keyed
        ``"0.5"`` etc. (None for one-path forecasts), ``direction_t`` (t-statistic against 0.5 over
        decision dates, from ``dates`` [N] of all origins; NaN without them), ``pit_histogram`` (None likewise), ``samples``;
        with ``per_horizon`` also ``per_horizon`` lists over steps 1..H.
    """
    y = future_close[rows]
    seen = np.isfinite(y)
    direction = scores.direction[rows]
    out: dict[str, Any] = {
        "mae": m.nanmean(scores.abs_err[rows]),
        "mase": m.nanmean(scores.scaled_err[rows]),
        "crps": m.nanmean(scores.crps[rows]),
        "scaled_crps": m.nanmean(scores.scaled_crps[rows]),
        "wql": m.weighted_quantile_loss(scores.quantiles[rows][seen], y[seen], quantile_levels),
        "direction_accuracy": m.nanmean(direction),
        "direction_n": int(np.isfinite(direction).sum()),
        "direction_t": (direction_t_by_date(direction, np.asarray(dates)[rows]) if dates is not None
                        else float("nan")),
        "coverage": ({_level_key(lv): m.nanmean(scores.covered[lv][rows]) for lv in coverage_levels}
                     if scores.covered is not None else {_level_key(lv): None for lv in coverage_levels}),
        "pit_histogram": m.pit_histogram(scores.pit[rows], pit_bins) if scores.pit is not None else None,
        "samples": scores.samples,
        "invalid": int(scores.invalid[rows].sum()),
    }
    if per_horizon:
        steps = range(y.shape[1])
        out["per_horizon"] = {
            "mae": [m.nanmean(scores.abs_err[rows][:, k]) for k in steps],
            "mase": [m.nanmean(scores.scaled_err[rows][:, k]) for k in steps],
            "crps": [m.nanmean(scores.crps[rows][:, k]) for k in steps],
            "scaled_crps": [m.nanmean(scores.scaled_crps[rows][:, k]) for k in steps],
            "direction_accuracy": [m.nanmean(direction[:, k]) for k in steps],
            "coverage": ({_level_key(lv): [m.nanmean(scores.covered[lv][rows][:, k]) for k in steps]
                          for lv in coverage_levels} if scores.covered is not None else None),
        }
    return out


def per_origin(scores: Scores) -> dict[str, np.ndarray]:
    """Per-origin means over the horizon: ``mae``, ``mase``, ``crps``, ``scaled_crps``, ``direction_accuracy``."""
    with np.errstate(invalid="ignore"):
        def mean_h(a: np.ndarray) -> np.ndarray:
            ok = np.isfinite(a)
            total = np.where(ok, a, 0.0).sum(axis=1)
            count = ok.sum(axis=1)
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

        return {
            "mae": mean_h(scores.abs_err),
            "mase": mean_h(scores.scaled_err),
            "crps": mean_h(scores.crps),
            "scaled_crps": mean_h(scores.scaled_crps),
            "direction_accuracy": mean_h(scores.direction),
        }
