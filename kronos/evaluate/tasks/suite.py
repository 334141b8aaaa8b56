"""Run the paper's tasks on the evaluate stage's origins: forecasts in, ``metrics.json``'s ``tasks`` out.

The runner hands over a ``forecast(model, sampling)`` function (sample paths [N, S, H, F] in price units
for every origin); tasks whose sampling settings coincide share one pass. The tasks are the records of
:data:`kronos.evaluate.task_table.TASK_TABLE`; this module holds each record's ``applies`` check and
runner (``run_<task>``: forecasts and baselines into rows, by the pure functions of the task's module)
and the loop over them, which compares each model with the task's best baseline (Diebold–Mariano over
dates) and words the verdict through :mod:`kronos.verdicts`.

Every forecaster is scored on the same origins. A model's forecast of an origin whose paths are not
possible prices is invalid: each task counts it (``invalid``) and scores it as a failure (its module
says how); the verdict names the count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, astuple, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from kronos import scores
from kronos.evaluate.baselines import POINT_BASELINES, baseline_paths
from kronos.evaluate.origins import Origins
from kronos.evaluate.settings import EvaluateSettings
from kronos.evaluate.task_table import POINT_FORECAST, SUITE_TASKS, TASK_TABLE, TASKS_BY_NAME, TaskSpec
from kronos.evaluate.tasks import generation as gen
from kronos.evaluate.tasks import price as price_task
from kronos.evaluate.tasks import returns as return_task
from kronos.evaluate.tasks import volatility as vol
from kronos.evaluate.tasks.comparison import comparisons, per_date, valid_forecasts, verdict, window_overlap
from kronos.inference.settings import SamplingSettings

log = logging.getLogger(__name__)

Forecast = Callable[[str, SamplingSettings], np.ndarray]  # (model name, sampling) -> [N, S, H, F] price units

DEFINITIONS = {
    **{f"tasks.{t.name}": t.definition for t in TASK_TABLE},
    "tasks.<task>.dm": "Diebold-Mariano test (HAC, horizon = overlap) of the per-date losses of a model against the "
                       "task's best baseline: t > 0 means the model's loss is lower; the verdict says beats / loses "
                       "to only where p < 0.05. Losses: -RankIC (price, return), QLIKE (volatility), |held-out "
                       "classifier accuracy - 0.5| (generation), scaled CRPS and MASE (accuracy)",
    "tasks.<task>.point_forecast": "the point forecast every task reads from sample paths: the median of the paths "
                                   "(kronos.scores.point_forecast)",
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


@dataclass
class ForecastPasses:
    """Model paths per sampling setting, computed once per (model, sampling) and shared by the tasks."""

    forecast: Forecast
    store: dict[tuple, dict[str, np.ndarray]] = field(default_factory=dict)
    seconds: float = 0.0

    def paths(self, name: str, sampling: SamplingSettings) -> np.ndarray:
        """[N, S, H, F] price-unit paths of model ``name`` under ``sampling``."""
        runs = self.store.setdefault(astuple(sampling), {})
        if name not in runs:
            t0 = time.perf_counter()
            runs[name] = self.forecast(name, sampling)
            self.seconds += time.perf_counter() - t0
        return runs[name]


@dataclass
class TaskContext:
    """What a task runner reads: the origins, its sampling, the models' paths and the training closes."""

    origins: Origins
    settings: EvaluateSettings
    sampling: SamplingSettings
    model_names: Sequence[str]
    passes: ForecastPasses
    overlap: int
    rng: np.random.Generator
    train_close: Mapping[str, np.ndarray]

    def paths(self, name: str) -> np.ndarray:
        return self.passes.paths(name, self.sampling)

    @property
    def feats(self) -> list[str]:
        return list(self.origins.features)


@dataclass
class TaskRows:
    """A runner's output: rows per forecaster (models first), the baselines' names, extra fields, report extras."""

    rows: dict[str, dict[str, Any]]
    baselines: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    volatility_points: pd.DataFrame | None = None
    examples: dict[str, np.ndarray] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ when tasks apply
@dataclass(frozen=True)
class DataShape:
    """What decides whether a task can run: known from the origins, or from the datamodule before training.

    Attributes:
        candles: raw open/high/low/close are available.
        horizon, lookback: rows of the windows.
        series_per_date: the most series with an origin on one date.
        complete_futures: origins whose whole future is observed.
    """

    candles: bool
    horizon: int
    lookback: int
    series_per_date: int
    complete_futures: int

    @classmethod
    def of(cls, origins: "Origins | DataShape") -> "DataShape":
        """The shape of ``origins`` (a DataShape is returned as it is)."""
        if isinstance(origins, DataShape):
            return origins
        return cls(
            candles=origins.hist_raw is not None and {"open", "high", "low", "close"} <= set(origins.features),
            horizon=int(origins.horizon), lookback=int(origins.lookback),
            series_per_date=int(pd.Series(origins.instrument).groupby(origins.datetime).nunique().max()),
            complete_futures=int(np.isfinite(origins.future_close).all(axis=1).sum()))


def price_applies(data: Origins | DataShape) -> str | None:
    d = DataShape.of(data)
    return None if d.candles and d.horizon >= price_task.MIN_STEPS else TASKS_BY_NAME["price"].needs


def return_applies(data: Origins | DataShape) -> str | None:
    return None if DataShape.of(data).series_per_date >= 3 else TASKS_BY_NAME["return"].needs


def volatility_applies(data: Origins | DataShape) -> str | None:
    return None if DataShape.of(data).lookback >= 3 else TASKS_BY_NAME["volatility"].needs


def generation_applies(data: Origins | DataShape) -> str | None:
    d = DataShape.of(data)
    ok = d.candles and gen.MIN_LENGTH <= d.horizon < d.lookback and d.complete_futures >= 10
    return None if ok else TASKS_BY_NAME["generation"].needs


def allowed_tasks(origins: Origins) -> dict[str, str | None]:
    """Task -> None when the data allows it, else the reason it does not."""
    return {name: TASKS_BY_NAME[name].resolve("applies")(origins) for name in SUITE_TASKS}


def task_requirements(*, candles: bool, horizon: int, lookback: int, series_per_date: int,
                      complete_futures: int) -> dict[str, str | None]:
    """Task -> None when data of this shape allows it, else the reason it does not (the preflight's check before
    training; the same rules as :func:`allowed_tasks` on origins)."""
    shape = DataShape(candles, horizon, lookback, series_per_date, complete_futures)
    return {name: TASKS_BY_NAME[name].resolve("applies")(shape) for name in SUITE_TASKS}


# --------------------------------------------------------------------------------------------- the runners
def _strip(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _baseline_channel_paths(name: str, origins: Origins, channels: Sequence[str], samples: int,
                            rng: np.random.Generator) -> np.ndarray:
    """A path baseline applied to each channel's lookback: point-forecast path [N, H, C]."""
    idx = [list(origins.features).index(c) for c in channels]
    out = [scores.point_forecast(baseline_paths(name, origins.hist_raw[..., k], origins.horizon, samples, rng), axis=1)
           for k in idx]
    return np.stack(out, axis=-1)


def run_price(ctx: TaskContext) -> TaskRows:
    """Price task: point-forecast paths of open/high/low/close against the realised ones."""
    o = ctx.origins
    channels = list(price_task.PRICE_CHANNELS)
    idx = [ctx.feats.index(c) for c in channels]
    real = o.future_raw[..., idx]
    rows = {}
    for name in ctx.model_names:
        paths = ctx.paths(name)[..., idx]
        invalid = ~valid_forecasts(paths, np.isfinite(real).all(axis=2))
        rows[name] = price_task.score_price(scores.point_forecast(paths, axis=1), real, o.datetime, ctx.overlap,
                                            invalid=invalid)
    baselines = [b for b in ctx.settings.baselines if b in POINT_BASELINES]
    for b in baselines:
        point = _baseline_channel_paths(b, o, channels, ctx.sampling.sample_count, ctx.rng)
        rows[b] = price_task.score_price(point, real, o.datetime, ctx.overlap)
    return TaskRows(rows, baselines)


def run_return(ctx: TaskContext) -> TaskRows:
    """Return task: the predicted H-step return against the realised one, beside the cross-sectional rules."""
    o = ctx.origins
    ci = ctx.feats.index("close")
    realised, partial = return_task.realised_return(o.last_close, o.future_close)
    extra = {"partial_future": int((partial & np.isfinite(realised)).sum()),
             "no_future": int((~np.isfinite(realised)).sum())}
    rows = {}
    for name in ctx.model_names:
        closes = ctx.paths(name)[..., ci]
        invalid = ~valid_forecasts(closes)
        predicted = scores.point_forecast(closes[:, :, -1], axis=1) / o.last_close - 1.0
        rows[name] = return_task.score_returns(predicted, realised, o.datetime, o.instrument, ctx.overlap,
                                               invalid=invalid)
    baselines = list(return_task.RETURN_RULES)
    for rule in baselines:
        signal = return_task.rule_signal(rule, o.hist_raw, ctx.feats, o.horizon)
        rows[rule] = return_task.score_returns(signal, realised, o.datetime, o.instrument, ctx.overlap)
    return TaskRows(rows, baselines, extra)


def _volatility_points(forecasts: Mapping[str, np.ndarray], realised: np.ndarray, origins: Origins) -> pd.DataFrame:
    """Per origin and forecaster: predicted and realised variance (the report's scatter and CSV)."""
    return pd.concat([pd.DataFrame({
        "datetime": pd.to_datetime(origins.datetime, unit="ns"), "instrument": origins.instrument.astype(str),
        "model": name, "predicted_variance": f, "realised_variance": realised})
        for name, f in forecasts.items()], ignore_index=True)


def run_volatility(ctx: TaskContext) -> TaskRows:
    """Volatility task: realised variance against the models' paths and hist_vol, ewma and the train-fitted garch."""
    o = ctx.origins
    ci = ctx.feats.index("close")
    observed = np.isfinite(o.future_close)
    realised = vol.realised_variance(o.last_close, o.future_close, observed)
    forecasts: dict[str, np.ndarray] = {}
    invalid: dict[str, np.ndarray] = {}
    for name in ctx.model_names:
        closes = ctx.paths(name)[..., ci]
        invalid[name] = ~valid_forecasts(closes, observed)
        forecasts[name] = vol.realised_variance(o.last_close, closes, observed).mean(axis=1)
    steps = {"hist_vol": vol.hist_vol_variance(o.hist_close, o.horizon),
             "ewma": vol.ewma_variance(o.hist_close, o.horizon)}
    extra: dict[str, Any] = {}
    garch = vol.GarchBaseline.fit(ctx.train_close)
    extra["garch_cost"] = garch.cost(o.instrument)
    if garch.pooled is not None:
        steps["garch"] = garch.variance(o.instrument, o.hist_close, o.horizon)
    else:
        extra["garch_cost"]["skipped"] = ("no training split to estimate it on (garch is estimated where the model "
                                          "learns its weights, never on the lookback)")
    for b, step in steps.items():
        forecasts[b] = vol.horizon_variance(step, observed)
    rows = vol.score_volatility_table(forecasts, invalid, realised, o.datetime)
    return TaskRows(rows, [b for b in vol.VOL_BASELINES if b in steps], extra,
                    volatility_points=_volatility_points(forecasts, realised, o))


def _generation_windows(ctx: TaskContext, complete: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Generated windows [M, G, F] of every model (its first path) and baseline, at the origins ``complete``."""
    o, rng = ctx.origins, ctx.rng
    hist = o.hist_raw[complete]
    windows = {name: ctx.paths(name)[complete, 0] for name in ctx.model_names}
    windows["bootstrap"] = gen.bootstrap_windows(hist, o.horizon, ctx.feats, rng)
    windows["garch_sim"], cost = gen.garch_sim_windows(hist, o.horizon, ctx.feats, rng, o.instrument[complete],
                                                       ctx.settings.task_options.garch_refit_every)
    windows["random_walk"] = gen.random_walk_windows(hist, o.horizon, ctx.feats, rng)
    return windows, {"garch_sim_cost": cost}


def run_generation(ctx: TaskContext) -> TaskRows:
    """Generation task: generated continuations against the real ones (classifier, predictive score, facts)."""
    o, feats = ctx.origins, ctx.feats
    complete = np.flatnonzero(np.isfinite(o.future_raw).all(axis=(1, 2)) & np.isfinite(o.hist_raw).all(axis=(1, 2))
                              & gen.valid_windows(o.future_raw, feats))
    if len(complete) > ctx.settings.task_options.max_windows:
        complete = np.sort(ctx.rng.choice(complete, ctx.settings.task_options.max_windows, replace=False))
    hist, real = o.hist_raw[complete], o.future_raw[complete]
    anchors = gen.Anchors.from_lookback(hist, feats)
    windows, extra = _generation_windows(ctx, complete)
    real_facts = gen.stylized_facts(real, anchors, feats)
    real_feats = gen.window_features(real, anchors, feats)
    epochs, seed = ctx.settings.task_options.classifier_epochs, ctx.sampling.seed
    rows = {}
    for name, w in windows.items():
        ok = gen.valid_windows(w, feats)
        r_std, g_std = gen.standardise(real_feats, gen.window_features(w, anchors, feats))
        row = gen.discriminative(r_std, g_std, o.datetime[complete], seed=seed, epochs=epochs, valid=ok)
        row["predictive_rank_ic"] = gen.predictive(r_std, g_std[ok], seed=seed, epochs=epochs)
        row["invalid_by_part"] = {part: int(bad.sum()) for part, bad in gen.invalid_parts(w, feats).items()}
        row["stylized_facts"] = gen.compare_facts(real_facts, gen.stylized_facts(w[ok], anchors.take(ok), feats))
        rows[name] = row
    pick = np.arange(min(4, len(complete)))
    examples = {"real": np.concatenate([hist[pick], real[pick]], axis=1),
                **{n: np.concatenate([hist[pick], w[pick]], axis=1) for n, w in windows.items()},
                "lookback": np.array(o.lookback), "close_index": np.array(feats.index("close"))}
    return TaskRows(rows, list(gen.GEN_BASELINES), extra, examples=examples)


# ------------------------------------------------------------------------------------------------ the loop
def _task_block(spec: TaskSpec, out: TaskRows, ctx: TaskContext, seconds: float) -> dict[str, Any]:
    """One task's ``metrics.json`` block: rows, baselines, sampling, DM tests and the verdict."""
    found, dm = comparisons(out.rows, ctx.model_names, out.baselines, spec.metric, spec.label, spec.higher_is_better,
                            ctx.overlap)
    invalid = {name: int(out.rows[name].get("invalid", out.rows[name].get("invalid_windows", 0)))
               for name in ctx.model_names}
    return {
        "models": {name: _strip(row) for name, row in out.rows.items()},
        "baselines": out.baselines,
        "baselines_are": spec.baselines,
        "headline": {"metric": spec.metric, "higher_is_better": spec.higher_is_better},
        "point_forecast": POINT_FORECAST,
        "sampling": asdict(ctx.sampling),
        "overlap": ctx.overlap,
        "dm": dm,
        "verdict": verdict(found, invalid),
        **out.extra,
        "seconds": round(seconds, 3),
    }


def _plan(origins: Origins, settings: EvaluateSettings) -> tuple[list[str], list[str], dict[str, str]]:
    """(requested, run, skipped {task: reason}) in table order."""
    requested = list(SUITE_TASKS) if settings.tasks is None else [t for t in SUITE_TASKS if t in settings.tasks]
    allowed = allowed_tasks(origins)
    skipped = {t: allowed[t] for t in requested if allowed[t] is not None}
    for task, reason in skipped.items():
        log.warning("evaluate: task %s skipped: needs %s", task, reason)
    return requested, [t for t in requested if allowed[t] is None], skipped


def run_tasks(model_names: Sequence[str], forecast: Forecast, origins: Origins, settings: EvaluateSettings,
              stride: int, train_close: Mapping[str, np.ndarray] | None = None) -> TaskResult:
    """Score every requested task the data allows (see the module docstring).

    Args:
        model_names: the sampled models, in report order (``kronos`` first).
        forecast: ``forecast(name, sampling) -> [N, S, H, F]`` price-unit paths of every origin.
        stride: rows between origins (for the windows' overlap).
        train_close: {series: [T] closes of its training split} (the ``garch`` baseline's estimation data;
            :func:`kronos.evaluate.origins.training_closes`); without it ``garch`` is left out, with the reason.
    """
    started = time.perf_counter()
    requested, run, skipped = _plan(origins, settings)
    overlap = window_overlap(origins.horizon, stride)
    passes = ForecastPasses(forecast)
    result = TaskResult(tasks={}, summary={})
    for task in run:
        spec, t0 = TASKS_BY_NAME[task], time.perf_counter()
        sampling = settings.task_sampling[task]
        ctx = TaskContext(origins, settings, sampling, list(model_names), passes, overlap,
                          np.random.default_rng(sampling.seed), train_close or {})
        out = spec.resolve("runner")(ctx)
        result.tasks[task] = _task_block(spec, out, ctx, time.perf_counter() - t0)
        if out.volatility_points is not None:
            result.volatility_points = out.volatility_points
        result.examples.update(out.examples)
        log.info("evaluate: task %s: %s", task, result.tasks[task]["verdict"])
    n_forecasts = sum(len(runs) * len(origins) for runs in passes.store.values())
    result.summary = {
        "requested": requested, "run": run, "skipped": skipped,
        "forecast_passes": [{"sampling": dict(zip(("T", "top_k", "top_p", "sample_count", "seed"), key)),
                             "models": sorted(runs)} for key, runs in passes.store.items()],
        "forecast_seconds": round(passes.seconds, 3),
        "forecasts_per_second": (n_forecasts / passes.seconds) if passes.seconds > 0 else None,
        "seconds": round(time.perf_counter() - started, 3),
        "missing": dict(origins.missing),
    }
    return result


def accuracy_verdict(per_origin_losses: Mapping[str, Mapping[str, np.ndarray]], table: Mapping[str, Mapping[str, Any]],
                     models: Sequence[str], baselines: Sequence[str], dates: np.ndarray,
                     overlap: int) -> dict[str, Any]:
    """The accuracy task's verdict: each model against the best baseline on relative CRPS and relative MASE.

    Args:
        per_origin_losses: name -> {scaled_crps [N], mase [N]} per-origin means over the horizon.
        table: the accuracy table (``relative_crps``, ``relative_mase`` and ``invalid`` per name).
    """
    out: dict[str, Any] = {"dm": {}, "point_forecast": POINT_FORECAST}
    parts = []
    invalid = {name: int(table[name].get("invalid") or 0) for name in models}
    for metric, loss, label in (("relative_crps", "scaled_crps", "CRPS"), ("relative_mase", "mase", "MASE")):
        rows = {name: {metric: table[name].get(metric),
                       "_loss": dict(zip(*[a.tolist() for a in per_date(per_origin_losses[name][loss], dates)]))}
                for name in table}
        found, out["dm"][label] = comparisons(rows, models, baselines, metric, f"relative {label}", False, overlap)
        parts.append(f"{label}: " + verdict(found, invalid))
    out["verdict"] = " ".join(parts)
    return out
