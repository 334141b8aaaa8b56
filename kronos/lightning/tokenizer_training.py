"""Stage 1: the tokenizer trained by reconstruction + BSQ loss."""

from __future__ import annotations

from typing import Any

import torch

from kronos.lightning.base import KronosStageModule, OptimizerFactory, SchedulerFactory
from kronos.models.tokenizer import KronosTokenizer


class TokenizerModule(KronosStageModule):
    """Trains a :class:`KronosTokenizer` on normalised windows.

    Batches hold ``x`` float32 [B, L+H, 6]; the whole window is reconstructed. ``step_loss_weight``
    (``stage.step_loss_weight``) adds the error of consecutive changes (``KronosTokenizer.compute_loss``).
    """

    stage = "tokenizer"

    def __init__(
        self,
        tokenizer: KronosTokenizer,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
        step_loss_weight: float = 0.0,
    ) -> None:
        super().__init__(optimizer, scheduler, compile)
        self.model = tokenizer.train()  # from_pretrained returns eval mode; Lightning keeps modes as found
        if not (isinstance(step_loss_weight, (int, float)) and step_loss_weight >= 0):
            raise ValueError(f"stage.step_loss_weight={step_loss_weight!r} must be a number >= 0 (0: the reference loss)")
        self.step_loss_weight = float(step_loss_weight)

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if not self.step_loss_weight:  # the reference call: a compute_loss overridden with its signature still works
            return self.model_loss(batch["x"])
        return self.model_loss(batch["x"], step_weight=self.step_loss_weight)
