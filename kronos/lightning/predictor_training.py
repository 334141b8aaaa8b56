"""Stage 2: the autoregressive predictor trained over a frozen tokenizer's tokens."""

from __future__ import annotations

from typing import Any

import torch

from kronos.lightning.base import KronosStageModule, OptimizerFactory, SchedulerFactory
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

LOSS_TARGETS = ("all", "horizon")


class PredictorModule(KronosStageModule):
    """Trains :class:`Kronos` with cross-entropy on the next step's s1/s2 tokens.

    Batches hold ``x`` float32 [B, T, 6] and ``stamp`` int64 [B, T, 5]; the frozen tokenizer turns
    ``x`` into s1/s2 ids [B, T] and the model learns ids t=1..T-1 from ids and stamps t=0..T-2.

    Args:
        tokenizer: the tokenizer whose ids are the targets; frozen and kept in eval mode.
        predictor: the network to train (fresh or pretrained).
        sampled_s1: condition s2 on a sampled s1 (the reference fine-tuning scripts) instead of the
            true s1 (teacher forcing, the paper's objective and the default).
        loss_targets: ``all`` (every next-token target of the window, the reference objective) or
            ``horizon`` (only rows after the lookback: the rows a forecast produces, whose
            normalisation statistics never include themselves).
        lookback: L, the number of lookback rows of each window (needed by ``horizon``).
    """

    stage = "predictor"

    def __init__(
        self,
        tokenizer: KronosTokenizer,
        predictor: Kronos,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        sampled_s1: bool = False,
        compile: bool = False,
        loss_targets: str = "all",
        lookback: int | None = None,
    ) -> None:
        super().__init__(optimizer, scheduler, compile)
        if loss_targets not in LOSS_TARGETS:
            raise ValueError(f"stage.loss_targets={loss_targets!r} is not one of {LOSS_TARGETS}")
        if loss_targets == "horizon" and not lookback:
            raise ValueError("stage.loss_targets=horizon needs the lookback length (data.lookback)")
        tok_bits = (tokenizer.config["s1_bits"], tokenizer.config["s2_bits"])
        pred_bits = (predictor.config["s1_bits"], predictor.config["s2_bits"])
        if tok_bits != pred_bits:
            raise ValueError(
                f"tokenizer bits (s1, s2) = {tok_bits} but predictor bits = {pred_bits}: "
                "use a predictor config whose s1_bits/s2_bits match the tokenizer"
            )
        self.model = predictor.train()  # from_pretrained returns eval mode; Lightning keeps modes as found
        self.tokenizer = tokenizer.requires_grad_(False).eval()
        self.sampled_s1 = sampled_s1
        self.target_start = lookback if loss_targets == "horizon" else 1

    def train(self, mode: bool = True) -> "PredictorModule":
        """Switch the predictor's mode; the frozen tokenizer always stays in eval mode."""
        super().train(mode)
        self.tokenizer.eval()
        return self

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            s1_ids, s2_ids = self.tokenizer.encode_ids(batch["x"])
        return self.model_loss(
            s1_ids, s2_ids, batch["stamp"], sampled_s1=self.sampled_s1, target_start=self.target_start
        )
