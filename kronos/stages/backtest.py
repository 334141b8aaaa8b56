"""``stage=backtest``: forecast the test split with the experiment's weights and write its report.

The pair is chosen by the weights rule (what this command trained, ``weights.<kind>``, the
experiment's export, and only without an export ``model.<kind>.pretrained``) and recorded as
``weights: {tokenizer, predictor}`` in ``backtest/metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import lightning.pytorch as pl
from omegaconf import DictConfig

from kronos.atomic import atomic_write_json
from kronos.experiment import Experiment
from kronos.stages.common import build_loggers, finish_loggers, weight_source


def backtest_stage(
    cfg: DictConfig, datamodule: pl.LightningDataModule, experiment: Experiment, produced: Mapping[str, Path]
) -> dict[str, Any]:
    """Backtest the experiment's tokenizer/predictor pair on ``datamodule``'s test split.

    Returns:
        The metrics written to ``experiment.backtest_dir / "metrics.json"`` (with ``weights``).
    """
    # qlib and the model code are slow to import: only when backtesting.
    from kronos.backtest.runner import run_backtest
    from kronos.inference.loading import load_predictor

    sources = {kind: weight_source(cfg, kind, experiment, produced) for kind in ("tokenizer", "predictor")}
    predictor = load_predictor(
        sources["tokenizer"].location, sources["predictor"].location,
        device=cfg.backtest.get("device"), max_context=cfg.backtest.max_context, clip=cfg.data.clip,
    )
    weights = {kind: source.as_dict() for kind, source in sources.items()}
    loggers = build_loggers(cfg)
    out_dir = experiment.backtest_dir
    metrics = run_backtest(predictor, datamodule, cfg.backtest, out_dir, logger=loggers[0] if loggers else None)
    # run_backtest does not know where the weights came from: add them to the report it wrote.
    metrics_file = out_dir / "metrics.json"
    written = json.loads(metrics_file.read_text())
    atomic_write_json(metrics_file, {**written, "weights": weights})
    finish_loggers(loggers)
    return {**metrics, "weights": weights}
