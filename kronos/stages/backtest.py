"""``stage=backtest``: load the experiment's weights and run the backtest into ``outputs/<name>/backtest``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig

from kronos.experiment import MODEL_KINDS, Experiment
from kronos.stages.common import build_loggers, finish_loggers, weight_source


def backtest_stage(cfg: DictConfig, datamodule: Any, experiment: Experiment,
                   produced: Mapping[str, Path]) -> dict[str, Any]:
    """Forecast the test split with the experiment's models and write ``experiment.backtest_dir``.

    Weights follow :func:`kronos.experiment.resolve_weights` (this command's exports, then
    ``weights.<kind>``, then the experiment's exports, then ``model.<kind>.pretrained``); what was loaded
    is recorded in metrics.json under ``weights``. Forecasts go through the experiment's forecast store
    (``experiment.forecasts_dir``); under torchrun every rank calls this and forecasts its share, rank zero
    alone writes the report (the others return their rank and the store's counts).
    """
    # qlib and the model code are slow to import: only when backtesting.
    from kronos.backtest.runner import run_backtest
    from kronos.backtest.settings import BacktestSettings
    from kronos.inference.loading import load_predictor
    from kronos.inference.ranks import Ranks
    from kronos.lightning.tracking import log_report_artifacts
    from kronos.stages.calibrate import calibrated_sampling

    settings = BacktestSettings.from_config(cfg.backtest)
    if settings.sampling.seed is None:  # the backtest's sampling follows the experiment's seed unless set
        settings = dataclasses.replace(settings, sampling=dataclasses.replace(settings.sampling, seed=int(cfg.seed)))
    sources = {kind: weight_source(cfg, kind, experiment, produced) for kind in MODEL_KINDS}
    sampling, sampling_source = calibrated_sampling(settings.sampling, cfg.backtest.get("sampling"),
                                                    sources["predictor"].location)  # null T/top_p: calibrated
    settings = dataclasses.replace(settings, sampling=sampling)
    predictor = load_predictor(sources["tokenizer"].location, sources["predictor"].location, device=settings.device,
                               max_context=settings.max_context, clip=float(cfg.data.clip),
                               precision=settings.precision)
    ranks = Ranks.from_env()
    loggers = build_loggers(cfg) if ranks.is_zero else []
    metrics = run_backtest(predictor, datamodule, settings, experiment.backtest_dir,
                           logger=loggers[0] if loggers else None,
                           weights={kind: src.as_dict() for kind, src in sources.items()},
                           provider_dir=experiment.provider_dir, store_dir=experiment.forecasts_dir, ranks=ranks,
                           sampling_source=sampling_source)
    if not ranks.is_zero:
        return metrics
    log_report_artifacts(loggers, experiment.backtest_dir)
    finish_loggers(loggers)
    return metrics


def headline(metrics: Mapping[str, Any]) -> list[str]:
    """The backtest's headline lines (model vs baselines in money and IC), as its report states them."""
    lines = [str(line) for line in metrics.get("headline") or ()]
    return lines or [str(metrics.get("verdict") or "no headline (see metrics.json)")]
