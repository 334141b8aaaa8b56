"""Learning-rate schedules built from config as partials: ``scheduler(optimizer, total_steps=N)``.

Schedules are LambdaLR multipliers of the optimizer's lr computed from the step count alone, so a run
resumed with a longer budget continues the curve instead of failing past the old total.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_pct: float = 0.03,
    start_factor: float = 0.04,
    min_ratio: float = 0.0,
) -> LambdaLR:
    """Linear warm-up from ``start_factor`` x lr to lr over ``warmup_pct`` of the steps, then cosine decay
    to ``min_ratio`` x lr. With the defaults this is the one-cycle shape (OneCycleLR's div_factor 25)."""
    total = max(int(total_steps), 1)
    warmup = max(int(total * warmup_pct), 1)

    def factor(step: int) -> float:
        if step < warmup:
            return start_factor + (1.0 - start_factor) * step / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
