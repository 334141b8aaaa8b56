"""Export the best model in the published checkpoint format, with ``training_info.json`` beside it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from kronos.atomic import atomic_directory
from kronos.lightning.finetune import count_parameters, published_copy
from kronos.training_info import TrainingInfo

log = logging.getLogger(__name__)

_PACKAGES = ("torch", "lightning", "numpy", "pandas", "hydra-core", "safetensors", "huggingface_hub", "pyqlib")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a checkpoint's behaviour depends on."""
    versions: dict[str, str | None] = {}
    for name in ("kronos-framework", *_PACKAGES):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The checkout's HEAD commit and whether the tree had uncommitted changes (None outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


class ExportCallback(Callback):
    """Track the best validation score and export that model when fitting ends (rank zero only).

    The weights come, in order of preference, from the ModelCheckpoint that monitors the same metric
    (survives resumes), from the best state seen in this process, or from the final model. They are
    written with ``save_pretrained`` into a temporary directory that then replaces ``export_dir``;
    a LoRA model's adapters are merged first, so every export is in the published format.

    Args:
        export_dir: destination, e.g. ``outputs/<name>/tokenizer``.
        monitor: validation metric that ranks models.
        mode: "min" or "max".
    """

    def __init__(self, export_dir: str, monitor: str = "val/loss", mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.export_dir = Path(export_dir)
        self.monitor = monitor
        self.mode = mode
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        # What the run knows before training (config, data, starting weights): set by the fit stage.
        self.run_info = TrainingInfo()
        self.exported: Path | None = None

    def _improved(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not torch.isfinite(value):
            return
        score = float(value)
        if self._improved(score):
            self.best_score = score
            if trainer.is_global_zero:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")

    def _checkpoint_weights(self, trainer: pl.Trainer) -> tuple[dict[str, torch.Tensor], float] | None:
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.monitor == self.monitor and cb.best_model_path:
                path = Path(cb.best_model_path)
                if path.is_file() and cb.best_model_score is not None:
                    ckpt = torch.load(path, map_location="cpu", weights_only=False)
                    weights = {
                        k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
                    }
                    return weights, float(cb.best_model_score)
        return None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        model = pl_module.model
        from_ckpt = self._checkpoint_weights(trainer)
        if from_ckpt is not None:
            weights, score, source = *from_ckpt, "best checkpoint"
        elif self.best_state is not None:
            weights, score, source = self.best_state, self.best_score, "best validation in memory"
        else:
            weights, score, source = model.state_dict(), self.best_score, "final weights"
        # LoRA adapters are merged here, so the export has the published key names and no adapter tensors.
        export = published_copy(model, weights)
        finetune = getattr(pl_module, "finetune", None)
        info = dataclasses.replace(
            self.run_info,
            stage=getattr(pl_module, "stage", None),
            exported_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            weights=source,
            best_validation={"metric": self.monitor, "mode": self.mode, "value": score},
            global_step=trainer.global_step,
            epochs_completed=trainer.current_epoch,
            world_size=trainer.world_size,
            num_nodes=trainer.num_nodes,
            precision=str(trainer.precision),
            strategy=type(trainer.strategy).__name__,
            model_config=dict(model.config),
            parameters=sum(p.numel() for p in export.parameters()),
            trainable_parameters=count_parameters(model)[1],
            finetune=finetune.describe() if finetune is not None else {"mode": "full"},
            versions=package_versions(),
            git=git_commit(),
        )
        with atomic_directory(self.export_dir) as tmp:
            export.save_pretrained(tmp)
            info.write(tmp)
        self.exported = self.export_dir
        log.info("exported %s (%s, %s=%s) to %s", info.stage, source, self.monitor, score, self.export_dir)
