"""Run the stages of one experiment from a composed config: tokenizer, predictor, backtest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from kronos.lightning.comet import end_comet_runs
from kronos.lightning.export import ExportCallback
from kronos.lightning.predictor_module import PredictorModule
from kronos.lightning.tokenizer_module import TokenizerModule
from kronos.models.predictor import Kronos
from kronos.models.tokenizer import KronosTokenizer

log = logging.getLogger(__name__)


class StageInputError(RuntimeError):
    """A stage cannot find what an earlier stage should have produced."""


def _instantiate_keyed(group: DictConfig | None) -> dict[str, Any]:
    """Instantiate every ``name: {_target_: ...}`` entry of a keyed group; ``name: null`` drops one."""
    if not group:
        return {}
    return {key: instantiate(node) for key, node in group.items() if node is not None and "_target_" in node}


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """The configured loggers for ``cfg.stage.current`` (keyed by name in ``cfg.logger``)."""
    return list(_instantiate_keyed(cfg.get("logger")).values())


def find_export(cfg: DictConfig, kind: str, produced: dict[str, Path]) -> str:
    """Where the ``kind`` ("tokenizer"/"predictor") checkpoint for this stage comes from.

    Order: what this command just trained; ``model.<kind>.pretrained``; ``run_dir/<kind>``; and, for a
    sweep job, the experiment's own ``outputs/<name>/<kind>``.
    """
    if kind in produced:
        return str(produced[kind])
    pretrained = cfg.model[kind].get("pretrained")
    if pretrained:
        return str(pretrained)
    candidates = [Path(cfg.run_dir) / kind, Path(cfg.output_root) / cfg.name / kind]
    for path in candidates:
        if (path / "config.json").is_file():
            return str(path)
    raise StageInputError(
        f"no {kind} checkpoint for experiment '{cfg.name}': looked in {', '.join(map(str, candidates))}. "
        f"Run `python -m kronos.train stage={kind} name={cfg.name}` first, or set "
        f"model.{kind}.pretrained=<hub id or directory>."
    )


def build_tokenizer(cfg: DictConfig, source: str | None = None) -> KronosTokenizer:
    """A tokenizer from ``source`` (hub id or directory) if given, else fresh from ``model.tokenizer.config``."""
    if source:
        return KronosTokenizer.from_pretrained(source)
    return KronosTokenizer(**OmegaConf.to_container(cfg.model.tokenizer.config, resolve=True))


def build_predictor(cfg: DictConfig, source: str | None = None) -> Kronos:
    """A predictor from ``source`` if given, else fresh from ``model.predictor.config``."""
    if source:
        return Kronos.from_pretrained(source)
    return Kronos(**OmegaConf.to_container(cfg.model.predictor.config, resolve=True))


def resolve_resume(cfg: DictConfig, stage: str) -> str | None:
    """Lightning checkpoint to resume ``stage`` from: ``ckpt_path`` = null, "last" or a file."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    if ckpt == "last":
        path = Path(cfg.run_dir) / "checkpoints" / stage / "last.ckpt"
        if path.is_file():
            log.info("resuming %s from %s", stage, path)
            return str(path)
        log.info("ckpt_path=last but %s does not exist: starting %s fresh", path, stage)
        return None
    if not Path(ckpt).is_file():
        raise StageInputError(f"ckpt_path={ckpt} does not exist: pass an existing .ckpt file, 'last', or null")
    return str(ckpt)


def build_module(cfg: DictConfig, stage: str, produced: dict[str, Path]) -> pl.LightningModule:
    """The LightningModule of ``stage`` with its model fresh or from ``model.<stage>.pretrained``."""
    optimizer = instantiate(cfg.optim.optimizer)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    if stage == "tokenizer":
        tokenizer = build_tokenizer(cfg, cfg.model.tokenizer.get("pretrained"))
        return TokenizerModule(tokenizer, optimizer, scheduler, compile=cfg.compile)
    tokenizer = build_tokenizer(cfg, find_export(cfg, "tokenizer", produced))
    predictor = build_predictor(cfg, cfg.model.predictor.get("pretrained"))
    return PredictorModule(
        predictor, tokenizer, optimizer, scheduler,
        sampled_s1=bool(cfg.stage.get("sampled_s1", False)), compile=cfg.compile,
        loss_targets=cfg.stage.get("loss_targets", "all"), lookback=cfg.data.lookback,
    )


def fit_stage(
    cfg: DictConfig, stage: str, datamodule: pl.LightningDataModule, produced: dict[str, Path]
) -> tuple[Path | None, pl.Trainer]:
    """Train ``stage`` ("tokenizer" or "predictor") and return (export directory, trainer)."""
    module = build_module(cfg, stage, produced)
    callbacks = _instantiate_keyed(cfg.get("callbacks"))
    loggers = build_loggers(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for cb in callbacks.values():
        if isinstance(cb, ExportCallback):
            cb.run_info = {"config": resolved, "data": datamodule.describe()}
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(resolved)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_resume(cfg, stage))
    # Other ranks must not read the export before rank zero has finished writing it.
    trainer.strategy.barrier()
    export = next((cb.export_dir for cb in callbacks.values() if isinstance(cb, ExportCallback)), None)
    if trainer.is_global_zero:
        end_comet_runs(loggers, export)
    return export, trainer


def backtest_stage(
    cfg: DictConfig, datamodule: pl.LightningDataModule, produced: dict[str, Path]
) -> dict[str, Any]:
    """Forecast the test split with the experiment's models and write ``run_dir/backtest``."""
    from kronos.backtest.runner import run_backtest  # qlib is slow to import: only when backtesting
    from kronos.inference.predictor import KronosPredictor

    tokenizer = build_tokenizer(cfg, find_export(cfg, "tokenizer", produced))
    predictor = build_predictor(cfg, find_export(cfg, "predictor", produced))
    kp = KronosPredictor(
        predictor, tokenizer, device=cfg.backtest.get("device"),
        max_context=cfg.backtest.max_context, clip=cfg.data.clip,
    )
    loggers = build_loggers(cfg)
    out_dir = Path(cfg.run_dir) / "backtest"
    metrics = run_backtest(kp, datamodule, cfg.backtest, out_dir, logger=loggers[0] if loggers else None)
    for lg in loggers:
        lg.finalize("success")
    end_comet_runs(loggers)
    return metrics
