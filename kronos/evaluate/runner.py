"""``run_evaluate``: every model and baseline forecasts the same rolling origins; score and report.

Call on rank zero. Writes ``out_dir/{metrics.json, origins.csv, *.png, report.html}`` atomically
(a temporary directory renamed into place) and returns the metrics.
"""

from __future__ import annotations

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
from kronos.inference.decisions import iter_decision_forecasts
from kronos.inference.settings import SamplingSettings

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


def model_paths(model: ModelForecaster, origins: Origins, sampling: SamplingSettings, batch_size: int,
                repairs: dict[str, CandleRepairs] | None = None) -> np.ndarray:
    """Sample paths [N, S, H, F] (price units, float32, possible candles) of a sampled model on every origin;
    their candle repair counts are added to ``repairs[model.name]`` when given."""
    try:
        parts = list(iter_decision_forecasts(model.predictor, origins.batches(batch_size), sampling,
                                             origins.features or FEATURES))
    except ValueError as err:
        raise ValueError(f"{model.name}: {err}") from None
    if repairs is not None:
        repairs[model.name] = sum((fc.candle_repairs() for fc in parts), repairs.get(model.name, CandleRepairs()))
    return np.concatenate([fc.paths for fc in parts])


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


def _json_clean(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (so metrics.json has null, never NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


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
                 sampling_source: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score ``models`` and ``settings.baselines`` on the same rolling origins of ``settings.split``.

    Args:
        models: sampled models (the experiment's ``kronos`` first, then ``evaluate.models``).
        datamodule: ``KronosDataModule`` (``eval_dataloader``, ``lookback``, ``horizon``, ``features``).
        settings: ``EvaluateSettings.from_config(cfg.evaluate)``.
        out_dir: the report directory (``experiment.evaluate_dir``), replaced atomically.
        weights: recorded as ``metrics.json``'s ``weights`` (what was loaded for ``kronos``).
        logger: a Lightning logger; headline numbers go to ``log_metrics`` when given.
        sampling_source: which T / top_p were used and where they came from, with the calibration's validation
            coverage and PIT before/after (metrics.json ``sampling_source``).

    Returns:
        The metrics written to ``metrics.json`` (``origins``, ``models.<name>``, ...), plus ``figures``.
    """
    from kronos.evaluate.report import write_report  # matplotlib only when reporting

    close_index = list(datamodule.features).index("close")
    origins = collect_origins(datamodule, settings.split, settings.stride, settings.batch_size)
    log.info("evaluate: %d origins on %d series (stride %d, split %s, skipped %s, missing %s)", len(origins),
             len(set(origins.instrument)), settings.stride, settings.split, origins.skipped, origins.missing)
    levels, qlevels = settings.coverage_levels, settings.quantile_levels
    rng = np.random.default_rng(settings.sampling.seed)
    scores: dict[str, Scores] = {}
    repairs: dict[str, CandleRepairs] = {}
    warnings: list[str] = []
    for model in models:
        log.info("evaluate: forecasting with %s (%d sample paths)", model.name, settings.sampling.sample_count)
        paths = model_paths(model, origins, settings.sampling, settings.batch_size, repairs)[..., close_index]
        scores[model.name] = score_paths(paths, origins.hist_close, origins.future_close, coverage_levels=levels,
                                         quantile_levels=qlevels, rng=rng)
        for warning in (*model.notes, overlap_warning(model.name, model.data_end, origins)):
            if warning:
                warnings.append(warning)
                log.warning(warning)
    for name in settings.baselines:
        paths = baseline_paths(name, origins.hist_close, origins.horizon, settings.sampling.sample_count, rng)
        scores[name] = score_paths(paths, origins.hist_close, origins.future_close, coverage_levels=levels,
                                   quantile_levels=qlevels, rng=rng)
    fail_invalid(scores, origins.future_close, origins.last_close)

    every = slice(None)
    series = origins.instrument.astype(str)
    naive_origin = per_origin(scores["naive"])
    table: dict[str, Any] = {}
    for name, sc in scores.items():
        summary = summarise(sc, origins.future_close, every, coverage_levels=levels, quantile_levels=qlevels,
                            pit_bins=settings.pit_bins, dates=origins.datetime)
        mine = per_origin(sc)
        summary["relative_mase"] = m.geometric_mean_ratio(mine["mase"], naive_origin["mase"], series)
        summary["relative_crps"] = m.geometric_mean_ratio(mine["scaled_crps"], naive_origin["scaled_crps"], series)
        table[name] = summary

    groups = (np.array([exchange_group(s) for s in series], dtype=object) if settings.group_by
              else np.full(len(origins), "all", dtype=object))
    group_tables: dict[str, Any] = {}
    if settings.group_by and len(set(groups)) > 1:
        for g in sorted(set(groups)):
            rows = np.flatnonzero(groups == g)
            group_tables[g] = {"origins": int(len(rows)), "series": int(len(set(series[rows]))), "models": {
                name: summarise(sc, origins.future_close, rows, coverage_levels=levels, quantile_levels=qlevels,
                                pit_bins=settings.pit_bins, dates=origins.datetime, per_horizon=False)
                for name, sc in scores.items()}}

    by_name = {mdl.name: mdl for mdl in models}

    def forecast(name: str, sampling: SamplingSettings) -> np.ndarray:
        log.info("evaluate: forecasting with %s for the tasks (T %g, top_p %g, %d paths)", name, sampling.T,
                 sampling.top_p, sampling.sample_count)
        return model_paths(by_name[name], origins, sampling, settings.batch_size, repairs)

    suite = run_tasks([mdl.name for mdl in models], forecast, origins, settings, settings.stride,
                      train_close=training_closes(datamodule))
    accuracy = accuracy_verdict({name: per_origin(sc) for name, sc in scores.items()}, table,
                                [mdl.name for mdl in models], list(settings.baselines), origins.datetime,
                                window_overlap(origins.horizon, settings.stride))
    if models:
        log.info("evaluate: accuracy: %s", accuracy["verdict"])

    dates = pd.to_datetime(origins.datetime, unit="ns")
    metrics = _json_clean({
        "origins": len(origins),
        "series": int(len(set(series))),
        "dates": int(len(set(origins.datetime.tolist()))),
        "split": settings.split,
        "period": {"first_origin": str(dates.min()), "last_origin": str(dates.max())},
        "stride": settings.stride,
        "lookback": origins.lookback,
        "horizon": origins.horizon,
        "sample_count": settings.sampling.sample_count,
        "sampling": {k: getattr(settings.sampling, k) for k in ("T", "top_k", "top_p", "seed")},
        "sampling_source": dict(sampling_source) if sampling_source else None,
        "skipped": origins.skipped,
        "missing": origins.missing,
        "weights": dict(weights) if weights is not None else {"tokenizer": None, "predictor": None},
        "candle_repairs": repairs_block(repairs),
        "models": table,
        "model_weights": {mdl.name: dict(mdl.weights) for mdl in models},
        "baselines": list(settings.baselines),
        "groups": group_tables,
        "warnings": warnings,
        "tasks": {"accuracy": accuracy, **suite.tasks},
        "task_suite": suite.summary,
        "definitions": {**DEFINITIONS, **TASK_DEFINITIONS},
    })
    per_origin_csv = pd.concat([_origin_rows(name, sc, origins, groups, levels) for name, sc in scores.items()],
                               ignore_index=True)
    figures = write_report(out_dir, metrics, per_origin_csv, volatility_points=suite.volatility_points,
                           examples=suite.examples)
    if logger is not None:
        flat = {f"evaluate/{name}/{key}": val for name, row in metrics["models"].items()
                for key, val in row.items() if isinstance(val, (int, float)) and val is not None}
        logger.log_metrics(flat)
    return {**metrics, "figures": {k: str(v) for k, v in figures.items()}}
