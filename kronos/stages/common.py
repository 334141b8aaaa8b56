"""What the stage runners share: the per-stage config copy, weights resolution, loggers, rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

from kronos.experiment import Experiment, ModelKind, WeightSource, resolve_weights
from kronos.lightning.comet import end_comet_runs
from kronos.stages.table import TRAINING_STAGES
from kronos.errors import KronosUserError



class StageInputError(KronosUserError, RuntimeError):
    """A stage is asked for something it cannot find or use (e.g. a ``ckpt_path`` that does not exist)."""


def stage_lr(cfg: DictConfig, stage: str) -> float:
    """The peak learning rate of a training ``stage``: ``optim.lr`` when set, else ``model.lr.<stage>``."""
    chosen = cfg.optim.get("lr")
    if chosen is None:
        chosen = cfg.model.lr[stage]
    return float(chosen)


def stage_config(cfg: DictConfig, stage: str) -> DictConfig:
    """A copy of ``cfg`` for running ``stage``: ``stage.current`` set and, for a training stage,
    ``optim.lr`` resolved to the rate it trains at (so the exported ``training_info.json`` records it)."""
    scfg = cfg.copy()
    with open_dict(scfg):
        scfg.stage.current = stage
        if stage in TRAINING_STAGES:
            scfg.optim.lr = stage_lr(cfg, stage)
    return scfg


def weight_source(
    cfg: DictConfig, kind: ModelKind, experiment: Experiment, produced: Mapping[str, Path]
) -> WeightSource:
    """Which ``kind`` weights a consumer of ``cfg`` loads: :func:`kronos.experiment.resolve_weights` fed
    with the config's override ``weights.<kind>`` and starting point ``model.<kind>.pretrained``."""
    overrides = cfg.get("weights") or {}
    return resolve_weights(
        kind, experiment,
        override=overrides.get(kind),
        pretrained=cfg.model[kind].get("pretrained"),
        produced=produced,
    )


def instantiate_keyed(group: DictConfig | None, **kwargs: Any) -> dict[str, Any]:
    """Instantiate every ``name: {_target_: ...}`` entry of a keyed group; ``name: null`` drops one."""
    if not group:
        return {}
    return {
        key: instantiate(node, **kwargs)
        for key, node in group.items()
        if node is not None and "_target_" in node
    }


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """The configured loggers for ``cfg.stage.current`` (keyed by name in ``cfg.logger``)."""
    return list(instantiate_keyed(cfg.get("logger")).values())


def finish_loggers(loggers: list[Logger], artifact_dir: str | Path | None = None) -> None:
    """Flush loggers that ran outside a Trainer and end Comet runs (attaching ``artifact_dir``)."""
    for lg in loggers:
        lg.finalize("success")
    end_comet_runs(loggers, artifact_dir)
