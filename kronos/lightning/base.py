"""What both training stages share: optimisation, schedule, finite-loss guard and logging."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import lightning.pytorch as pl
import torch

from kronos.lightning.finetune import FinetuneSettings, optimizer_param_groups
from kronos.errors import KronosUserError

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class NonFiniteLossError(KronosUserError, RuntimeError):
    """The training loss became NaN or infinite."""


class KronosStageModule(pl.LightningModule):
    """Base LightningModule: ``self.model`` is the nn.Module that is trained and exported.

    Args:
        optimizer: partial optimizer factory, called as ``optimizer(params)``.
        scheduler: partial schedule factory, called as ``scheduler(optimizer, total_steps=N)``; or None.
        compile: wrap ``self.model`` with ``torch.compile`` at fit start.
    """

    stage: str = ""
    # How ``self.model`` is fine-tuned; set by ``kronos.lightning.finetune.apply_finetune`` (default: full).
    finetune: FinetuneSettings = FinetuneSettings()

    def __init__(
        self,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.compile = compile
        self.model: torch.nn.Module

    def setup(self, stage: str) -> None:
        if self.compile and stage == "fit":
            self._compiled_loss = torch.compile(self.model.compute_loss)

    def model_loss(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """``self.model.compute_loss`` (compiled when requested): a dict with ``loss`` and its parts."""
        loss_fn = getattr(self, "_compiled_loss", None) or self.model.compute_loss
        return loss_fn(*args, **kwargs)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(optimizer_param_groups(self.model, self.finetune.layer_decay))
        # Layer-wise lr decay: scale each group's lr before a schedule records it as the group's base lr.
        for group in optimizer.param_groups:
            group["lr"] *= group.get("lr_scale", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The stage's loss dict (``loss`` plus its parts) for a batch holding ``x`` [B, T, 6]."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self._losses(batch)
        self.check_finite(losses["loss"])
        self.log_losses("train", losses, batch["x"].shape[0])
        return losses["loss"]

    def on_train_batch_end(self, outputs: Any, batch: dict[str, Any], batch_idx: int) -> None:
        # Reaching trainer.max_steps mid-epoch would end fit without a validation pass: no metric to rank
        # the model for export or checkpointing. Asking the trainer to stop makes Lightning validate first.
        max_steps = self.trainer.max_steps
        if max_steps is not None and 0 <= max_steps <= self.trainer.global_step:
            self.trainer.should_stop = True

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.log_losses("val", self._losses(batch), batch["x"].shape[0])

    def log_losses(self, split: str, losses: Mapping[str, torch.Tensor], batch_size: int) -> None:
        """Log every scalar of ``losses`` as ``<split>/<key>``, reduced across ranks."""
        on_step = split == "train"
        for key, value in losses.items():
            self.log(
                f"{split}/{key}",
                value.detach().float(),
                on_step=on_step,
                on_epoch=True,
                prog_bar=key == "loss",
                sync_dist=split != "train",
                batch_size=batch_size,
            )

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop with a clear message instead of training on NaN/inf."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"{self.stage} loss became {loss.item()} at global step {self.global_step}: "
                "lower optim.lr, check the data for extreme values, or raise optim.grad_clip's strictness."
            )
