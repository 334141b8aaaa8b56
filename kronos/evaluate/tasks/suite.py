"""Run the paper's tasks on the evaluate stage's origins: forecasts in, ``metrics.json``'s ``tasks`` out.

The runner hands over a ``forecast(model, sampling)`` function (sample paths [N, S, H, F] in price units
for every origin); tasks whose sampling settings coincide share one pass. Baselines come from the
lookback alone. Every task row is computed by the pure functions of its module; this module only wires
them, compares each model with the task's best baseline (Diebold–Mariano over dates) and writes the
verdict sentences.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, astuple, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from kronos.evaluate.baselines import baseline_paths
from kronos.evaluate.origins import Origins
from kronos.evaluate.settings import EvaluateSettings
from kronos.evaluate.tasks import TASKS
from kronos.evaluate.tasks import generation as gen
from kronos.evaluate.tasks import price as price_task
from kronos.evaluate.tasks import returns as return_task
from kronos.evaluate.tasks import volatility as vol
from kronos.evaluate.tasks.comparison import best, dm_against, per_date, verdict, window_overlap
from kronos.inference.settings import SamplingSettings

log = logging.getLogger(__name__)

Forecast = Callable[[str, SamplingSettings], np.ndarray]  # (model name, sampling) -> [N, S, H, F] price units

# Per task: the headline metric, its label in the verdict, whether higher is better, whether the margin is relative.
HEADLINE: dict[str, tuple[str, str, bool, bool]] = {
    "price": ("rank_ic", "RankIC", True, False),
    "return": ("rank_ic", "RankIC", True, False),
    "volatility": ("qlike", "QLIKE", False, True),
    "generation": ("discriminative_score", "discriminative score", True, False),
}

DEFINITIONS = {
    "tasks.price": "per origin and channel (open, high, low, close) the Pearson IC / Spearman RankIC between the mean "
                   "of the sample paths and the realised path over the horizon (steps that exist, at least 3); "
                   "averaged over channels, then origins; rank_ic_t: t over dates of the per-date mean RankIC "
                   "(HAC, lag = overlap - 1)",
    "tasks.return": "per date the cross-sectional Pearson IC / Spearman RankIC of the predicted H-step return (mean-"
                    "path close at H / last close - 1) with the realised one (to the last close that exists); means "
                    "over dates; rank_ic_t: t over dates, HAC with lag overlap - 1 where stride < H",
    "tasks.volatility": "realised variance = sum of squared close log returns over the steps that exist; models: the "
                        "same per sample path, averaged; mae of the square roots, qlike = mean(y/f - log(y/f) - 1), "
                        "Mincer-Zarnowitz regression y = a + b f (mz_alpha, mz_beta, r2, mz_p: joint test a=0, b=1, "
                        "HAC)",
    "tasks.generation": "see kronos/evaluate/tasks/generation.py: discriminative_score = held-out error of a GRU "
                        "telling real from generated windows (0.5 ideal), discriminative_accuracy_gap = |acc - 0.5|, "
                        "predictive_rank_ic = Spearman on real windows of a GRU trained on generated ones, "
                        "stylized_facts.<fact>.{real, generated, distance}",
    "tasks.<task>.dm": "Diebold-Mariano test (HAC, horizon = overlap) of the per-date losses of a model against the "
                       "task's best baseline: t > 0 means the model's loss is lower. Losses: -RankIC (price, return), "
                       "QLIKE (volatility), held-out classifier accuracy (generation), scaled CRPS and MASE (accuracy)",
    "overlap": "ceil(horizon / stride): how many consecutive origins of a series share future rows",
}


@dataclass
class TaskResult:
    """What the suite hands back: the ``tasks`` block of metrics.json, the suite's summary and the
    report's extras (per-origin volatility points, example windows)."""

    tasks: dict[str, Any]
    summary: dict[str, Any]
    volatility_points: pd.DataFrame | None = None
    examples: dict[str, np.ndarray] = field(default_factory=dict)


def allowed_tasks(origins: Origins) -> dict[str, str | None]:
    """Task -> None when the data allows it, else the reason it does not."""
    features = set(origins.features)
    return task_requirements(
        candles=origins.hist_raw is not None and {"open", "high", "low", "close"} <= features,
        horizon=origins.horizon, lookback=origins.lookback,
        series_per_date=int(pd.Series(origins.instrument).groupby(origins.datetime).nunique().max()),
        complete_futures=int(np.isfinite(origins.future_close).all(axis=1).sum()))


def task_requirements(*, candles: bool, horizon: int, lookback: int, series_per_date: int,
                      complete_futures: int) -> dict[str, str | None]:
    """Task -> None when data of this shape allows it, else the reason it does not (also checked before training).

    Args:
        candles: raw open/high/low/close are available.
        horizon, lookback: rows of the windows.
        series_per_date: the most series with an origin on one date.
        complete_futures: origins whose whole future is observed.
    """
    return {
        "price": (None if candles and horizon >= price_task.MIN_STEPS else
                  f"needs raw open/high/low/close and a horizon of at least {price_task.MIN_STEPS} rows"),
        "return": (None if series_per_date >= 3 else
                   "needs at least 3 series on one date (a cross-sectional IC)"),
        "volatility": None if lookback >= 3 else "needs a lookback of at least 3 rows",
        "generation": (None if candles and gen.MIN_LENGTH <= horizon < lookback and complete_futures >= 10
                       else f"needs raw candles, a horizon of {gen.MIN_LENGTH} rows or more (shorter than the "
                            "lookback) and 10 complete futures"),
    }


def _strip(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _compare(task: str, rows: dict[str, dict[str, Any]], models: Sequence[str], baselines: Sequence[str],
             overlap: int) -> dict[str, Any]:
    """The DM tests of each model against the best baseline, and the verdict sentence."""
    metric, label, higher, relative = HEADLINE[task]
    target = best(rows, list(baselines), metric, higher)
    dm = {}
    for name in models:
        if target is not None:
            dm[name] = {"against": target, **dm_against(rows[name].get("_loss", {}), rows[target].get("_loss", {}),
                                                        overlap)}
    return {"dm": dm, "verdict": verdict(rows, list(models), list(baselines), metric, label, higher, relative, dm)}


def accuracy_verdict(per_origin_losses: Mapping[str, Mapping[str, np.ndarray]], table: Mapping[str, Mapping[str, Any]],
                     models: Sequence[str], baselines: Sequence[str], dates: np.ndarray,
                     overlap: int) -> dict[str, Any]:
    """The accuracy task's verdict: each model against the best baseline on relative CRPS and relative MASE.

    Args:
        per_origin_losses: name -> {scaled_crps [N], mase [N]} per-origin means over the horizon.
        table: the accuracy table (``relative_crps``, ``relative_mase`` per name).
    """
    out: dict[str, Any] = {"dm": {}}
    parts = []
    for metric, loss, label in (("relative_crps", "scaled_crps", "CRPS"), ("relative_mase", "mase", "MASE")):
        rows = {name: {metric: table[name].get(metric),
                       "_loss": dict(zip(*[a.tolist() for a in per_date(per_origin_losses[name][loss], dates)]))}
                for name in table}
        target = best(rows, list(baselines), metric, False)
        dm = {name: {"against": target, **dm_against(rows[name]["_loss"], rows[target]["_loss"], overlap)}
              for name in models if target is not None}
        out["dm"][label] = dm
        parts.append(f"{label}: " + verdict(rows, list(models), list(baselines), metric, f"relative {label}", False,
                                            True, dm))
    out["verdict"] = " ".join(parts)
    return out


def _baseline_channel_paths(name: str, origins: Origins, channels: Sequence[str], samples: int,
                            rng: np.random.Generator) -> np.ndarray:
    """An accuracy baseline applied to each channel's lookback: mean path [N, H, C]."""
    idx = [list(origins.features).index(c) for c in channels]
    out = [baseline_paths(name, origins.hist_raw[..., k], origins.horizon, samples, rng).mean(axis=1) for k in idx]
    return np.stack(out, axis=-1)


def run_tasks(model_names: Sequence[str], forecast: Forecast, origins: Origins, settings: EvaluateSettings,
              stride: int) -> TaskResult:
    """Score every requested task the data allows (see the module docstring).

    Args:
        model_names: the sampled models, in report order (``kronos`` first).
        forecast: ``forecast(name, sampling) -> [N, S, H, F]`` price-unit paths of every origin.
        stride: rows between origins (for the windows' overlap).
    """
    started = time.perf_counter()
    allowed = allowed_tasks(origins)
    requested = list(TASKS) if settings.tasks is None else list(settings.tasks)
    skipped = {t: allowed[t] for t in requested if allowed[t] is not None}
    for task, reason in skipped.items():
        log.warning("evaluate: task %s skipped: %s", task, reason)
    run = [t for t in requested if allowed[t] is None]
    overlap = window_overlap(origins.horizon, stride)
    feats = list(origins.features)
    ci = feats.index("close")
    dates = origins.datetime
    observed = np.isfinite(origins.future_close)
    passes: dict[tuple, dict[str, np.ndarray]] = {}
    pass_seconds = 0.0

    def paths_for(name: str, task: str) -> np.ndarray:
        nonlocal pass_seconds
        sampling = settings.task_sampling[task]
        store = passes.setdefault(astuple(sampling), {})  # equal settings share one pass
        if name not in store:
            t0 = time.perf_counter()
            store[name] = forecast(name, sampling)
            pass_seconds += time.perf_counter() - t0
        return store[name]

    out: dict[str, Any] = {}
    result = TaskResult(tasks=out, summary={})
    for task in run:
        t0 = time.perf_counter()
        rng = np.random.default_rng(settings.task_sampling[task].seed)
        sampling = settings.task_sampling[task]
        rows: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {}
        if task == "price":
            channels = list(price_task.PRICE_CHANNELS)
            idx = [feats.index(c) for c in channels]
            real = origins.future_raw[..., idx]
            for name in model_names:
                rows[name] = price_task.score_price(paths_for(name, task)[..., idx].mean(axis=1), real, dates, overlap)
            baselines = list(settings.baselines)
            for b in baselines:
                rows[b] = price_task.score_price(
                    _baseline_channel_paths(b, origins, channels, sampling.sample_count, rng), real, dates, overlap)
        elif task == "return":
            realised, partial = return_task.realised_return(origins.last_close, origins.future_close)
            extra["partial_future"] = int((partial & np.isfinite(realised)).sum())
            extra["no_future"] = int((~np.isfinite(realised)).sum())
            for name in model_names:
                predicted = paths_for(name, task)[:, :, -1, ci].mean(axis=1) / origins.last_close - 1.0
                rows[name] = return_task.score_returns(predicted, realised, dates, origins.instrument, overlap)
            baselines = list(settings.baselines)
            for b in baselines:
                path = baseline_paths(b, origins.hist_close, origins.horizon, sampling.sample_count, rng)
                predicted = path[:, :, -1].mean(axis=1) / origins.last_close - 1.0
                rows[b] = return_task.score_returns(predicted, realised, dates, origins.instrument, overlap)
        elif task == "volatility":
            realised = vol.realised_variance(origins.last_close, origins.future_close, observed)
            forecasts: dict[str, np.ndarray] = {}
            for name in model_names:
                rv = vol.realised_variance(origins.last_close, paths_for(name, task)[..., ci], observed)
                forecasts[name] = rv.mean(axis=1)
            garch = vol.GarchBaseline(refit_every=settings.task_options.garch_refit_every)
            steps = {"hist_vol": vol.hist_vol_variance(origins.hist_close, origins.horizon),
                     "ewma": vol.ewma_variance(origins.hist_close, origins.horizon),
                     "garch": vol.garch_variance(garch, origins.instrument, dates, origins.hist_close,
                                                 origins.horizon)}
            for b, step in steps.items():
                forecasts[b] = vol.horizon_variance(step, observed)
            baselines = list(vol.VOL_BASELINES)
            for name, f in forecasts.items():
                rows[name] = vol.score_volatility(f, realised, dates)
            extra["garch_cost"] = garch.cost()
            result.volatility_points = pd.concat([pd.DataFrame({
                "datetime": pd.to_datetime(dates, unit="ns"), "instrument": origins.instrument.astype(str),
                "model": name, "predicted_variance": f, "realised_variance": realised})
                for name, f in forecasts.items()], ignore_index=True)
        else:  # generation
            complete = np.flatnonzero(np.isfinite(origins.future_raw).all(axis=(1, 2))
                                      & np.isfinite(origins.hist_raw).all(axis=(1, 2)))
            if len(complete) > settings.task_options.max_windows:
                complete = np.sort(rng.choice(complete, settings.task_options.max_windows, replace=False))
            hist = origins.hist_raw[complete]
            anchors = gen.Anchors.from_lookback(hist, feats)
            real = origins.future_raw[complete]
            windows: dict[str, np.ndarray] = {name: paths_for(name, task)[complete, 0] for name in model_names}
            windows["bootstrap"] = gen.bootstrap_windows(hist, origins.horizon, feats, rng)
            windows["garch_sim"], extra["garch_sim_cost"] = gen.garch_sim_windows(
                hist, origins.horizon, feats, rng, origins.instrument[complete],
                settings.task_options.garch_refit_every)
            windows["random_walk"] = gen.random_walk_windows(hist, origins.horizon, feats, rng)
            baselines = list(gen.GEN_BASELINES)
            real_facts = gen.stylized_facts(real, anchors, feats)
            real_feats = gen.window_features(real, anchors, feats)
            epochs = settings.task_options.classifier_epochs
            for name, w in windows.items():
                r_std, g_std = gen.standardise(real_feats, gen.window_features(w, anchors, feats))
                row = gen.discriminative(r_std, g_std, dates[complete], seed=sampling.seed, epochs=epochs)
                row["predictive_rank_ic"] = gen.predictive(r_std, g_std, seed=sampling.seed, epochs=epochs)
                row["stylized_facts"] = gen.compare_facts(real_facts, gen.stylized_facts(w, anchors, feats))
                rows[name] = row
            pick = np.arange(min(4, len(complete)))
            result.examples = {"real": np.concatenate([hist[pick], real[pick]], axis=1),
                               **{n: np.concatenate([hist[pick], w[pick]], axis=1) for n, w in windows.items()},
                               "lookback": np.array(origins.lookback), "close_index": np.array(ci)}
        compared = _compare(task, rows, model_names, baselines, overlap)
        out[task] = {
            "models": {name: _strip(row) for name, row in rows.items()},
            "baselines": baselines,
            "sampling": asdict(sampling),
            "overlap": overlap,
            **compared,
            **extra,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        log.info("evaluate: task %s: %s", task, out[task]["verdict"])
    n_forecasts = sum(len(store) * len(origins) for store in passes.values())
    total = time.perf_counter() - started
    result.summary = {
        "requested": requested, "run": run, "skipped": skipped,
        "forecast_passes": [{"sampling": dict(zip(("T", "top_k", "top_p", "sample_count", "seed"), key)),
                             "models": sorted(store)} for key, store in passes.items()],
        "forecast_seconds": round(pass_seconds, 3),
        "forecasts_per_second": (n_forecasts / pass_seconds) if pass_seconds > 0 else None,
        "seconds": round(total, 3),
        "missing": dict(origins.missing),
    }
    return result
