"""Stage 1: the tokenizer trained by reconstruction + BSQ loss."""

from __future__ import annotations

from typing import Any

import torch

from kronos.lightning.base import KronosStageModule, OptimizerFactory, SchedulerFactory
from kronos.models.tokenizer import KronosTokenizer


class TokenizerModule(KronosStageModule):
    """Trains a :class:`KronosTokenizer` on normalised windows.

    Batches hold ``x`` float32 [B, L+H, 6]; the whole window is reconstructed.
    """

    stage = "tokenizer"

    def __init__(
        self,
        tokenizer: KronosTokenizer,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(optimizer, scheduler, compile)
        self.model = tokenizer.train()  # from_pretrained returns eval mode; Lightning keeps modes as found

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.model_loss(batch["x"])
