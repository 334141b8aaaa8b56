"""``stage=evaluate``: score the experiment's pair, extra pairs and baselines on the test split.

    python -m kronos.train stage=evaluate name=<exp>
    python -m kronos.train stage=evaluate name=<exp> \
        'evaluate.models=[{name: small_zero_shot, tokenizer: NeoQuasar/Kronos-Tokenizer-base, predictor: NeoQuasar/Kronos-small}]'

Writes ``outputs/<name>/evaluate/`` (``Experiment.evaluate_dir``). Runs on rank zero only.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from omegaconf import DictConfig

from kronos.evaluate.runner import ModelForecaster, run_evaluate
from kronos.evaluate.settings import EvaluateSettings, ModelSpec
from kronos.experiment import MODEL_KINDS, Experiment, WeightSource, WeightsNotFoundError
from kronos.inference.loading import load_predictor, pair_warning
from kronos.models import registry
from kronos.stages.calibrate import calibrated_sampling
from kronos.stages.common import build_loggers, finish_loggers, weight_source
from kronos.training_info import TrainingInfo

log = logging.getLogger(__name__)


def _later(*dates: str | None) -> str | None:
    known = [pd.Timestamp(d) for d in dates if d]
    if not known:
        return None
    latest = max(known)  # intraday data keeps its time: the rest of that day may be out of sample
    return latest.date().isoformat() if latest == latest.normalize() else latest.isoformat(sep=" ")


def published_data_end(location: str | None) -> str | None:
    """The pretraining cutoff when ``location`` is a published predictor's hub id, else None
    (from the registry of published models, :mod:`kronos.models.registry`)."""
    published = registry.by_predictor(location)
    return published.data_end if published is not None else None


def kronos_data_end(settings: EvaluateSettings, predictor: WeightSource) -> str | None:
    """Last date of the data the experiment's predictor learnt from (for the overlap warning).

    ``evaluate.kronos_data_end`` when set; otherwise the later of: the published cutoff when the
    weights are, or were fine-tuned from (the export's ``training_info.json``), a published predictor,
    and the end of the export's own training split.
    """
    if settings.kronos_data_end:
        return settings.kronos_data_end
    info = TrainingInfo.read(predictor.location)
    started_from = info.pretrained("predictor") if info is not None else None
    pretrain_end = published_data_end(predictor.location) or published_data_end(started_from)
    return _later(pretrain_end, info.train_end() if info is not None else None)


def _spec_data_end(spec: ModelSpec) -> str | None:
    """An ``evaluate.models`` entry's cutoff: its ``data_end``, else the published one if it is a published
    predictor, else the end of its own training split."""
    info = TrainingInfo.read(spec.predictor)
    return spec.data_end or published_data_end(spec.predictor) or _later(info.train_end() if info is not None else None)


def evaluate_stage(cfg: DictConfig, datamodule: Any, experiment: Experiment,
                   produced: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Evaluate the experiment's pair (``kronos``), ``evaluate.models`` and the baselines.

    The pair follows ``resolve_weights`` (this command's exports, ``weights.<kind>``, the
    experiment's exports, then ``model.<kind>.pretrained``). When the experiment has none and
    ``evaluate.models`` lists pairs, those are evaluated alone (``weights`` is then null).

    Raises:
        WeightsNotFoundError: no pair to evaluate at all.
        CheckpointError / ForecastInputError: a listed pair cannot be loaded.
        EvaluateConfigError: an invalid ``evaluate.*`` key.
    """
    settings = EvaluateSettings.from_config(cfg.evaluate)
    loader_kw = dict(device=settings.device, max_context=settings.max_context, clip=float(cfg.data.clip),
                     warn=False, precision=settings.precision)  # a mismatched pair is a note of the report
    models: list[ModelForecaster] = []
    weights: dict[str, Any] = {"tokenizer": None, "predictor": None}
    try:
        sources = {kind: weight_source(cfg, kind, experiment, produced or {}) for kind in MODEL_KINDS}
    except WeightsNotFoundError:
        if not settings.models:
            raise
        log.warning("experiment '%s' has no exported pair: evaluating evaluate.models only", experiment.name)
        sources = None
    sampling_source = None
    if sources is not None:
        # T / top_p left null: the predictor's calibration (chosen on validation), else T 1, top-p 1
        sampling, sampling_source = calibrated_sampling(settings.sampling, cfg.evaluate.get("sampling"),
                                                        sources["predictor"].location)
        settings = dataclasses.replace(settings, sampling=sampling)
        weights = {kind: src.as_dict() for kind, src in sources.items()}
        predictor = load_predictor(sources["tokenizer"].location, sources["predictor"].location, **loader_kw)
        note = pair_warning("kronos", sources["tokenizer"].location, sources["predictor"].location)
        models.append(ModelForecaster("kronos", predictor, weights,
                                      kronos_data_end(settings, sources["predictor"]),
                                      notes=(note,) if note else ()))
    for spec in settings.models:
        predictor = load_predictor(spec.tokenizer, spec.predictor, **loader_kw)
        spec_weights = {"tokenizer": {"location": spec.tokenizer, "origin": "evaluate.models"},
                        "predictor": {"location": spec.predictor, "origin": "evaluate.models"}}
        note = pair_warning(spec.name, spec.tokenizer, spec.predictor)
        models.append(ModelForecaster(spec.name, predictor, spec_weights, _spec_data_end(spec),
                                      notes=(note,) if note else ()))
    from kronos.inference.ranks import Ranks
    from kronos.lightning.tracking import log_report_artifacts

    ranks = Ranks.from_env()  # under torchrun every rank forecasts its share; rank zero alone reports
    loggers = build_loggers(cfg) if ranks.is_zero else []
    metrics = run_evaluate(models, datamodule, settings, experiment.evaluate_dir, weights=weights,
                           logger=loggers[0] if loggers else None, store_dir=experiment.forecasts_dir, ranks=ranks,
                           sampling_source=sampling_source)
    if not ranks.is_zero:
        return metrics
    log_report_artifacts(loggers, experiment.evaluate_dir)
    finish_loggers(loggers)
    return metrics


def headline(metrics: Mapping[str, Any]) -> list[str]:
    """The evaluation's headline: the verdict of each task that ran (accuracy first), as the report states it."""
    tasks = metrics.get("tasks") or {}
    lines = [f"{task}: {entry['verdict']}" for task, entry in tasks.items()
             if isinstance(entry, Mapping) and entry.get("verdict")]
    return lines or [f"{metrics.get('origins', 0)} origins scored, no verdict (see metrics.json)"]
