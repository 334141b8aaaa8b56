"""``run_evaluate``: every model and baseline forecasts the same rolling origins; score and report.

Call on rank zero. Writes ``out_dir/{metrics.json, origins.csv, *.png, report.html}`` atomically
(a temporary directory renamed into place) and returns the metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from kronos import scores as m
from kronos.evaluate.baselines import baseline_paths
from kronos.evaluate.origins import Origins, collect_origins, exchange_group, training_closes
from kronos.evaluate.scoring import Scores, fail_invalid, per_origin, score_paths, summarise
from kronos.evaluate.settings import EvaluateSettings
from kronos.evaluate.tasks.comparison import window_overlap
from kronos.evaluate.tasks.suite import DEFINITIONS as TASK_DEFINITIONS
from kronos.evaluate.tasks.suite import accuracy_verdict, run_tasks
from kronos.data.features import FEATURES
from kronos.inference.candles import CandleRepairs, repairs_block
from kronos.inference.decisions import DecisionForecast, iter_decision_forecasts
from kronos.inference.progress import ProgressLine
from kronos.inference.ranks import Ranks
from kronos.inference.settings import SamplingSettings
from kronos.inference.store import (ForecastStore, cache_mode, data_fingerprint, fill_store, forecast_key,
                                    predictor_fingerprint, window_ids)
from kronos.jsonio import strict_json

log = logging.getLogger(__name__)

DEFINITIONS = {
    "point_forecast": f"per step, the {m.POINT_FORECAST_NAME} (naive and drift: their single path)",
    "mae": "mean |point - realised close| over origins x horizon steps, in price units",
    "mase": "mean of |point - realised| / s, s = mean |c_t - c_(t-1)| over the origin's lookback closes "
            "(the naive in-sample one-step error); origins with s = 0 are left out",
    "crps": "fair (unbiased) sample CRPS, mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 S (S-1)) (Ferro et al. 2008); "
            "a one-path forecast's CRPS is its absolute error; price units",
    "scaled_crps": "CRPS / s (the MASE scale): comparable across series of different price levels",
    "wql": "weighted quantile loss, mean over the quantile levels of 2 sum pinball_q / sum |y| (GluonTS/Chronos)",
    "direction_accuracy": "share of steps where sign(point - last close) equals sign(realised - last close); steps "
                          "with no predicted direction (point = last close, e.g. naive) or a flat realised close are "
                          "left out, so naive reports null; compare with 0.5. direction_t: t-statistic of the "
                          "per-date hit rate against 0.5 over decision dates (moves on one date are shared by "
                          "all series, so series are not independent draws)",
    "coverage": "share of realised closes inside the central 50/80/90 % interval of the forecast distribution, "
                "read from the randomised PIT ((1-a)/2 <= PIT <= (1+a)/2): nominal in expectation for a calibrated "
                "forecast at any sample count (empirical sample-quantile intervals under-cover with few samples); "
                "null for one-path forecasts, which have no interval",
    "pit_histogram": "fractions of the randomised PIT in equal bins of (0, 1); flat = calibrated, U = too narrow, "
                     "hump = too wide",
    "relative_mase": "geometric mean over series of mean MASE / mean MASE of naive on the same origins "
                     "(below 1 beats naive); the benchmark convention of ranking by geometric-mean relative score",
    "relative_crps": "the same geometric mean for scaled CRPS (naive's CRPS is its absolute error)",
    "missing": "origins are kept whatever happens after them: a future close that does not exist (suspension, "
               "delisting) is left out of every score of that step; origins_with_missing_future and "
               "missing_future_steps count them. skipped.beyond_data: origins at dates after which no series has "
               "any close (the end of the data)",
    "groups": "series grouped by market read from the instrument name (SH600000 -> SH, 600000.SH -> SH, "
              "NASDAQ:AAPL -> NASDAQ, else other); reported when there are two groups or more",
}


@dataclass
class ModelForecaster:
    """A sampled model to evaluate (KronosPredictor or anything with ``forecast_normalized``).

    Attributes:
        name: its row name (``kronos`` for the experiment's pair).
        predictor: exposes ``forecast_normalized(x, x_stamp, y_stamp, sampling, generator=...) -> [B, S, H, F]``
            normalised paths, and ``device`` (see kronos.inference.decisions).
        weights: what was loaded, e.g. ``{tokenizer: {location, origin}, predictor: {...}}``.
        data_end: last date of its training data (ISO) when known, for the overlap warning.
        notes: warnings about this model found while loading it (e.g. a pair that does not belong together),
            written into ``metrics.json``'s ``warnings``.
    """

    name: str
    predictor: Any
    weights: Mapping[str, Any] = field(default_factory=dict)
    data_end: str | None = None
    notes: tuple[str, ...] = ()


def _add_repairs(repairs: dict[str, CandleRepairs] | None, name: str, parts: Sequence[DecisionForecast]) -> None:
    """Add the candle repair counts of ``parts`` to ``repairs[name]`` (when a dict is given)."""
    if repairs is not None:
        repairs[name] = sum((fc.candle_repairs() for fc in parts), repairs.get(name, CandleRepairs()))


def model_paths(model: ModelForecaster, origins: Origins, sampling: SamplingSettings, batch_size: int,
                repairs: dict[str, CandleRepairs] | None = None) -> np.ndarray:
    """Sample paths [N, S, H, F] (price units, float32, possible candles) of a sampled model on every origin, in
    memory; their candle repair counts are added to ``repairs[model.name]`` when given."""
    try:
        parts = list(iter_decision_forecasts(model.predictor, origins.batches(batch_size), sampling,
                                             origins.features or FEATURES))
    except ValueError as err:
        raise ValueError(f"{model.name}: {err}") from None
    _add_repairs(repairs, model.name, parts)
    return np.concatenate([fc.paths for fc in parts])


@dataclass
class StoredPaths:
    """Every model's sample paths on the origins, through the experiment's forecast store when there is one.

    Called as ``paths(model, sampling) -> [N, S, H, F]`` (the origins' order); each (model, sampling) has its
    key (weights, data, the split's windows and stride, sampling, context, cache), the store of that key is
    filled with the origins it lacks (shared among ``ranks``) and read back. ``records`` keeps one entry per
    call for metrics.json (``forecast_store``): model, key, reused and computed origins; ``repairs`` adds up the
    candle repairs of every model's paths (metrics.json ``candle_repairs``).
    """

    datamodule: Any
    origins: Origins
    settings: EvaluateSettings
    store_dir: Path | None = None
    ranks: Ranks = field(default_factory=Ranks)
    records: list[dict[str, Any]] = field(default_factory=list)
    repairs: dict[str, CandleRepairs] = field(default_factory=dict)
    counted: set[tuple] = field(default_factory=set)  # (model, sampling) whose repairs are in ``repairs``

    def _repairs_of(self, model: ModelForecaster, sampling: SamplingSettings) -> dict[str, CandleRepairs] | None:
        """``repairs`` the first time (model, sampling)'s paths are fetched; None after (the same paths again)."""
        seen = (model.name, dataclasses.astuple(sampling))
        if seen in self.counted:
            return None
        self.counted.add(seen)
        return self.repairs

    def __call__(self, model: ModelForecaster, sampling: SamplingSettings) -> np.ndarray:
        repairs = self._repairs_of(model, sampling)
        if self.store_dir is None:
            paths = model_paths(model, self.origins, sampling, self.settings.batch_size, repairs)
            self.records.append({"model": model.name, "key": None, "computed": len(self.origins), "reused": 0})
            return paths
        key = forecast_key(weights=predictor_fingerprint(model.predictor, model.weights),
                           data=data_fingerprint(self.datamodule),
                           windows={"split": self.settings.split, "stride": self.settings.stride},
                           sampling=sampling, max_context=self.settings.max_context,
                           cache=cache_mode(model.predictor), precision=getattr(model.predictor, "precision", "fp32"))
        store = ForecastStore.open(self.store_dir, key)
        bar = ProgressLine(len(self.origins), f"evaluate forecasts ({model.name})", enabled=self.ranks.is_zero)
        try:
            counts = fill_store(store, model.predictor, self.origins.batches(self.settings.batch_size), sampling,
                                features=self.origins.features or FEATURES, ranks=self.ranks, progress=bar)
        except ValueError as err:
            raise ValueError(f"{model.name}: {err}") from None
        bar.close()
        if self.ranks.is_zero:
            store.write_manifest(counts)
        self.records.append({"model": model.name, "key": key.digest, "path": str(store.root), **counts.as_dict()})
        return self._read(store, model.name, repairs)

    def _read(self, store: ForecastStore, name: str, repairs: dict[str, CandleRepairs] | None) -> np.ndarray:
        """The stored paths of every origin, in the origins' order."""
        wanted = window_ids(self.origins.instrument.astype(str), self.origins.datetime)
        position = pd.Index(wanted)
        out: np.ndarray | None = None
        for fc in store.read(self.settings.batch_size, ids=wanted):
            if out is None:
                out = np.full((len(wanted), *fc.paths.shape[1:]), np.nan, dtype=np.float32)
            out[position.get_indexer(window_ids(fc.instrument.astype(str), fc.datetime))] = fc.paths
            _add_repairs(repairs, name, [fc])
        if out is None:
            raise ValueError(f"forecast store {store.root} holds none of the {len(wanted)} origins")
        return out


def overlap_warning(name: str, data_end: str | None, origins: Origins) -> str | None:
    """A warning when origins lie on or before the end of a model's training data (None otherwise)."""
    if not data_end:
        return None
    end = pd.Timestamp(data_end)
    # A date covers that whole day; a time (intraday training data) is the cutoff itself.
    cutoff = end + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if end == end.normalize() else end
    inside = origins.datetime <= cutoff.value
    if not inside.any():
        return None
    first = pd.Timestamp(int(origins.datetime.min())).date()
    return (f"{name}: {int(inside.sum())} of {len(origins)} origins ({inside.mean():.0%}) fall on or before "
            f"{data_end}, the end of the data these weights were trained on (evaluated period starts {first}); its "
            "scores there may reflect memorised prices, not forecasting skill. Evaluate after that date "
            "(data.splits) for an out-of-sample comparison.")


def _origin_rows(name: str, scores: Scores, origins: Origins, groups: np.ndarray,
                 levels: Sequence[float]) -> pd.DataFrame:
    """One CSV row per origin for forecaster ``name`` (means over the horizon)."""
    means = per_origin(scores)
    frame = pd.DataFrame({
        "datetime": pd.to_datetime(origins.datetime, unit="ns"),
        "instrument": origins.instrument.astype(str),
        "group": groups,
        "model": name,
        "last_close": origins.last_close,
        "mase_scale": m.mase_scale(origins.hist_close),
        **means,
    })
    for lv in levels:
        frame[f"covered_{lv:g}"] = scores.covered[lv].mean(axis=1) if scores.covered is not None else np.nan
    frame[f"forecast_close_{origins.horizon}"] = scores.point[:, -1]
    frame[f"realised_close_{origins.horizon}"] = origins.future_close[:, -1]
    return frame


def run_evaluate(models: Sequence[ModelForecaster], datamodule: Any, settings: EvaluateSettings,
                 out_dir: str | Path, *, weights: Mapping[str, Any] | None = None, logger: Any = None,
                 store_dir: Path | None = None, ranks: Ranks | None = None,
                 sampling_source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score ``models`` and ``settings.baselines`` on the same rolling origins of ``settings.split``.

    Args:
        models: sampled models (the experiment's ``kronos`` first, then ``evaluate.models``).
        datamodule: ``KronosDataModule`` (``eval_dataloader``, ``lookback``, ``horizon``, ``features``).
        settings: ``EvaluateSettings.from_config(cfg.evaluate)``.
        out_dir: the report directory (``experiment.evaluate_dir``), replaced atomically.
        weights: recorded as ``metrics.json``'s ``weights`` (what was loaded for ``kronos``).
        logger: a Lightning logger; headline numbers go to ``log_metrics`` when given.
        store_dir: the experiment's forecast stores (``Experiment.forecasts_dir``; None: forecast in memory).
        sampling_source: which T / top_p were used and where they came from, with the calibration's validation
            coverage and PIT before/after (metrics.json ``sampling_source``).
        ranks: the processes sharing the forecasts (default: one). Every rank runs the same steps so that
            each takes its share of every forecast (the scores are cheap); rank zero alone writes the report,
            the others return ``{"rank": r, "forecast_store": [...]}``.

    Returns:
        The metrics written to ``metrics.json`` (``origins``, ``models.<name>``, ...), plus ``figures``.
    """
    from kronos.evaluate.report import write_report  # matplotlib only when reporting

    ranks = ranks or Ranks()
    origins = collect_origins(datamodule, settings.split, settings.stride, settings.batch_size)
    log.info("evaluate: %d origins on %d series (stride %d, split %s, skipped %s, missing %s)", len(origins),
             len(set(origins.instrument)), settings.stride, settings.split, origins.skipped, origins.missing)
    paths = StoredPaths(datamodule, origins, settings, store_dir, ranks)
    scores, warnings = score_step(models, origins, settings, paths)
    by_name = {mdl.name: mdl for mdl in models}

    def forecast(name: str, sampling: SamplingSettings) -> np.ndarray:
        log.info("evaluate: forecasting with %s for the tasks (T %g, top_p %g, %d paths)", name, sampling.T,
                 sampling.top_p, sampling.sample_count)
        return paths(by_name[name], sampling)

    suite = run_tasks([mdl.name for mdl in models], forecast, origins, settings, settings.stride,
                      train_close=training_closes(datamodule))
    if not ranks.is_zero:
        return {"rank": ranks.rank, "forecast_store": paths.records}
    table = summary_step(scores, origins, settings)
    groups, group_tables = group_step(scores, origins, settings)
    accuracy = accuracy_verdict({name: per_origin(sc) for name, sc in scores.items()}, table,
                                [mdl.name for mdl in models], list(settings.baselines), origins.datetime,
                                window_overlap(origins.horizon, settings.stride))
    if models:
        log.info("evaluate: accuracy: %s", accuracy["verdict"])
    metrics = strict_json(describe_run(origins, settings, weights, models) | {
        "models": table, "groups": group_tables, "warnings": warnings,
        "tasks": {"accuracy": accuracy, **suite.tasks}, "task_suite": suite.summary,
        "forecast_store": paths.records, "definitions": {**DEFINITIONS, **TASK_DEFINITIONS},
        "sampling_source": dict(sampling_source) if sampling_source else None,
        "candle_repairs": repairs_block(paths.repairs),
    })
    per_origin_csv = pd.concat([_origin_rows(name, sc, origins, groups, settings.coverage_levels)
                                for name, sc in scores.items()], ignore_index=True)
    figures = write_report(out_dir, metrics, per_origin_csv, volatility_points=suite.volatility_points,
                           examples=suite.examples)
    if logger is not None:
        flat = {f"evaluate/{name}/{key}": val for name, row in metrics["models"].items()
                for key, val in row.items() if isinstance(val, (int, float)) and val is not None}
        logger.log_metrics(flat)
    return {**metrics, "figures": {k: str(v) for k, v in figures.items()}}


def score_step(models: Sequence[ModelForecaster], origins: Origins, settings: EvaluateSettings,
               paths: StoredPaths) -> tuple[dict[str, Scores], list[str]]:
    """Scores of every model (its paths' closes) and then every baseline, drawn in that order from one
    generator seeded with ``settings.sampling.seed``; and the models' warnings."""
    close_index = list(origins.features).index("close")
    levels, qlevels = settings.coverage_levels, settings.quantile_levels
    rng = np.random.default_rng(settings.sampling.seed)
    scores: dict[str, Scores] = {}
    warnings: list[str] = []
    for model in models:
        log.info("evaluate: forecasting with %s (%d sample paths)", model.name, settings.sampling.sample_count)
        closes = paths(model, settings.sampling)[..., close_index]
        scores[model.name] = score_paths(closes, origins.hist_close, origins.future_close, coverage_levels=levels,
                                         quantile_levels=qlevels, rng=rng)
        for warning in (*model.notes, overlap_warning(model.name, model.data_end, origins)):
            if warning:
                warnings.append(warning)
                log.warning(warning)
    for name in settings.baselines:
        closes = baseline_paths(name, origins.hist_close, origins.horizon, settings.sampling.sample_count, rng)
        scores[name] = score_paths(closes, origins.hist_close, origins.future_close, coverage_levels=levels,
                                   quantile_levels=qlevels, rng=rng)
    fail_invalid(scores, origins.future_close, origins.last_close)  # an impossible forecast scores as a failure
    return scores, warnings


def summary_step(scores: Mapping[str, Scores], origins: Origins, settings: EvaluateSettings) -> dict[str, Any]:
    """Every forecaster's summary over all origins, with its geometric-mean scores relative to naive."""
    series = origins.instrument.astype(str)
    naive_origin = per_origin(scores["naive"])
    table: dict[str, Any] = {}
    for name, sc in scores.items():
        summary = summarise(sc, origins.future_close, slice(None), coverage_levels=settings.coverage_levels,
                            quantile_levels=settings.quantile_levels, pit_bins=settings.pit_bins,
                            dates=origins.datetime)
        mine = per_origin(sc)
        summary["relative_mase"] = m.geometric_mean_ratio(mine["mase"], naive_origin["mase"], series)
        summary["relative_crps"] = m.geometric_mean_ratio(mine["scaled_crps"], naive_origin["scaled_crps"], series)
        table[name] = summary
    return table


def group_step(scores: Mapping[str, Scores], origins: Origins, settings: EvaluateSettings
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """(each origin's market group, the per-group tables when ``group_by`` finds two groups or more)."""
    series = origins.instrument.astype(str)
    groups = (np.array([exchange_group(s) for s in series], dtype=object) if settings.group_by
              else np.full(len(origins), "all", dtype=object))
    group_tables: dict[str, Any] = {}
    if settings.group_by and len(set(groups)) > 1:
        for g in sorted(set(groups)):
            rows = np.flatnonzero(groups == g)
            group_tables[g] = {"origins": int(len(rows)), "series": int(len(set(series[rows]))), "models": {
                name: summarise(sc, origins.future_close, rows, coverage_levels=settings.coverage_levels,
                                quantile_levels=settings.quantile_levels, pit_bins=settings.pit_bins,
                                dates=origins.datetime, per_horizon=False)
                for name, sc in scores.items()}}
    return groups, group_tables


def describe_run(origins: Origins, settings: EvaluateSettings, weights: Mapping[str, Any] | None,
                 models: Sequence[ModelForecaster]) -> dict[str, Any]:
    """The metrics' description of the run: origins, period, windows, sampling, weights, baselines."""
    dates = pd.to_datetime(origins.datetime, unit="ns")
    return {
        "origins": len(origins),
        "series": int(len(set(origins.instrument.astype(str)))),
        "dates": int(len(set(origins.datetime.tolist()))),
        "split": settings.split,
        "period": {"first_origin": str(dates.min()), "last_origin": str(dates.max())},
        "stride": settings.stride,
        "lookback": origins.lookback,
        "horizon": origins.horizon,
        "sample_count": settings.sampling.sample_count,
        "sampling": {k: getattr(settings.sampling, k) for k in ("T", "top_k", "top_p", "seed")},
        "skipped": origins.skipped,
        "missing": origins.missing,
        "weights": dict(weights) if weights is not None else {"tokenizer": None, "predictor": None},
        "model_weights": {mdl.name: dict(mdl.weights) for mdl in models},
        "baselines": list(settings.baselines),
    }
