"""Training stages (tokenizer, predictor): build the LightningModule, loggers and callbacks, fit, export.

``model.<kind>.pretrained`` says where training *starts* (fresh from ``model.<kind>.config`` when
null). The predictor stage's frozen tokenizer is whatever the weights rule picks
(:func:`kronos.stages.common.weight_source`), recorded as ``tokenizer_source`` in the export's
``training_info.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from kronos.experiment import Experiment, WeightSource
from kronos.lightning.base import KronosStageModule
from kronos.lightning.comet import end_comet_runs
from kronos.lightning.export import ExportCallback
from kronos.lightning.finetune import apply_finetune
from kronos.lightning.predictor_training import PredictorModule
from kronos.lightning.tokenizer_training import TokenizerModule
from kronos.models.code_init import init_from_codes
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer
from kronos.stages.common import StageInputError, build_loggers, instantiate_keyed, weight_source
from kronos.training_info import TrainingInfo
from kronos.stages.resume import check_resume

log = logging.getLogger(__name__)


def build_tokenizer(cfg: DictConfig, source: str | None = None) -> KronosTokenizer:
    """A tokenizer from ``source`` (hub id or directory) if given, else fresh from ``model.tokenizer.config``."""
    if source:
        return KronosTokenizer.from_pretrained(source)
    return KronosTokenizer(**OmegaConf.to_container(cfg.model.tokenizer.config, resolve=True))


def build_predictor(cfg: DictConfig, source: str | None = None) -> Kronos:
    """A predictor from ``source`` if given, else fresh from ``model.predictor.config`` (its token tables
    initialised from the tokens' codes when ``model.predictor.init=codes``, :mod:`kronos.models.code_init`)."""
    if source:
        return Kronos.from_pretrained(source)
    model = Kronos(**OmegaConf.to_container(cfg.model.predictor.config, resolve=True))
    if cfg.model.predictor.get("init", "default") == "codes":
        init_from_codes(model, seed=int(cfg.get("seed") or 0))
    return model


def resolve_resume(cfg: DictConfig, stage: str, experiment: Experiment) -> str | None:
    """Lightning checkpoint to resume ``stage`` from: ``ckpt_path`` = null, "last" or a file."""
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    if ckpt == "last":
        path = experiment.last_checkpoint(stage)
        if path.is_file():
            log.info("resuming %s from %s", stage, path)
            return str(path)
        log.info("ckpt_path=last but %s does not exist: starting %s fresh", path, stage)
        return None
    if not Path(ckpt).is_file():
        raise StageInputError(f"ckpt_path={ckpt} does not exist: pass an existing .ckpt file, 'last', or null")
    return str(ckpt)


def build_module(
    cfg: DictConfig, stage: str, experiment: Experiment, produced: Mapping[str, Path]
) -> tuple[pl.LightningModule, WeightSource | None]:
    """The LightningModule of ``stage``, its model fresh or from ``model.<stage>.pretrained``, in the
    fine-tuning mode of ``model.finetune``.

    Returns:
        (module, tokenizer source): for the predictor stage, where its frozen tokenizer came from
        (the weights rule); None for the tokenizer stage.
    """
    optimizer = instantiate(cfg.optim.optimizer)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    source: WeightSource | None = None
    module: KronosStageModule
    if stage == "tokenizer":
        tokenizer = build_tokenizer(cfg, cfg.model.tokenizer.get("pretrained"))
        module = TokenizerModule(tokenizer, optimizer, scheduler, compile=cfg.compile,
                                 step_loss_weight=float(cfg.stage.get("step_loss_weight", 0.0)))
    elif stage == "predictor":
        source = weight_source(cfg, "tokenizer", experiment, produced)
        log.info("predictor stage trains on the %s tokenizer %s", source.origin, source.location)
        tokenizer = build_tokenizer(cfg, source.location)
        predictor = build_predictor(cfg, cfg.model.predictor.get("pretrained"))
        module = PredictorModule(
            tokenizer, predictor, optimizer, scheduler,
            sampled_s1=bool(cfg.stage.get("sampled_s1", False)), compile=cfg.compile,
            loss_targets=str(cfg.stage.get("loss_targets", "all")), lookback=int(cfg.data.lookback),
        )
    else:
        raise ValueError(f"{stage!r} is not a training stage: expected tokenizer or predictor")
    # full / freeze / lora (before any checkpoint is restored, so a resumed LoRA run finds its adapters)
    return apply_finetune(module, cfg.model.get("finetune")), source


def fit_stage(
    cfg: DictConfig,
    stage: str,
    datamodule: pl.LightningDataModule,
    experiment: Experiment,
    produced: Mapping[str, Path],
) -> tuple[Path | None, pl.Trainer]:
    """Train ``stage`` ("tokenizer" or "predictor") and return (export directory, trainer).

    ``cfg`` is the stage's own config copy (:func:`kronos.stages.common.stage_config`): its
    ``optim.lr`` is the rate trained at, and the resolved config travels in ``training_info.json``.
    """
    module, tokenizer_source = build_module(cfg, stage, experiment, produced)
    callbacks = instantiate_keyed(cfg.get("callbacks"))
    loggers = build_loggers(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_info = TrainingInfo(
        config=resolved,
        data=datamodule.describe(),
        started_from=cfg.model[stage].get("pretrained"),  # null: trained from scratch
        tokenizer_source=tokenizer_source.as_dict() if tokenizer_source is not None else None,
        normalization=getattr(datamodule, "normalization", None),
    )
    for cb in callbacks.values():
        if isinstance(cb, ExportCallback):
            cb.run_info = run_info
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=list(callbacks.values()), logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(resolved)
    resume = resolve_resume(cfg, stage, experiment)
    if resume is not None:  # a truncated or foreign file, another shape or lookback: one line, before fitting
        check_resume(resume, module, getattr(datamodule, "window_settings", dict)())
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    # Other ranks must not read the export before rank zero has finished writing it.
    trainer.strategy.barrier()
    export = next((cb.export_dir for cb in callbacks.values() if isinstance(cb, ExportCallback)), None)
    if trainer.is_global_zero:
        end_comet_runs(loggers, export)
    return export, trainer


def headline(export: str | None) -> list[str]:
    """A training stage's headline: where its export went (None: no step ran, nothing was exported)."""
    return [f"exported to {export}" if export else "nothing exported (no training step ran)"]
