"""Learning-rate schedules built from config as partials: ``scheduler(optimizer, total_steps=N)``."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def one_cycle(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    max_lr: float,
    pct_start: float = 0.03,
    div_factor: float = 25.0,
) -> LRScheduler:
    """One-cycle: warm up to ``max_lr`` over ``pct_start`` of the steps, then cosine-anneal."""
    return OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=max(int(total_steps), 2),
        pct_start=pct_start,
        div_factor=div_factor,
    )


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_pct: float = 0.03,
    min_ratio: float = 0.1,
) -> LRScheduler:
    """Linear warm-up for ``warmup_pct`` of the steps, then cosine decay to ``min_ratio`` x lr."""
    total = max(int(total_steps), 1)
    warmup = max(int(total * warmup_pct), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
