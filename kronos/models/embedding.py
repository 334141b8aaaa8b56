"""Input embeddings of the Kronos predictor: token pairs and calendar stamps.

Shapes: B batch, T tokens, D d_model; stamps are int [B, T, 5] = (minute, hour, weekday, day, month).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Table sizes per stamp field, in the order of kronos.data.features.STAMP_FIELDS.
STAMP_TABLE_SIZES: dict[str, int] = {"minute": 60, "hour": 24, "weekday": 7, "day": 32, "month": 13}


class HierarchicalEmbedding(nn.Module):
    """``fusion_proj(cat(emb_s1(s1) * sqrt(D), emb_s2(s2) * sqrt(D)))``."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1_ids: Tensor, s2_ids: Tensor) -> Tensor:
        """(s1_ids, s2_ids) [B, T] -> [B, T, D]."""
        return self.fusion_proj(torch.cat([self.emb_s1(s1_ids) * self.scale, self.emb_s2(s2_ids) * self.scale], dim=-1))


class FixedEmbedding(nn.Module):
    """Untrained sinusoidal table (sin on even, cos on odd columns), saved as ``weight``."""

    def __init__(self, num_embeddings: int, d_model: int) -> None:
        super().__init__()
        position = torch.arange(num_embeddings, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(num_embeddings, d_model)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)[:, : d_model // 2]
        self.register_buffer("weight", table)

    def forward(self, ids: Tensor) -> Tensor:
        """ids [...] -> [..., D]."""
        return F.embedding(ids, self.weight)


class TemporalEmbedding(nn.Module):
    """Sum of one embedding per calendar field; learnable tables, or fixed sinusoidal ones."""

    def __init__(self, d_model: int, learn_te: bool) -> None:
        super().__init__()
        table = nn.Embedding if learn_te else FixedEmbedding
        self.minute_embed = table(STAMP_TABLE_SIZES["minute"], d_model)
        self.hour_embed = table(STAMP_TABLE_SIZES["hour"], d_model)
        self.weekday_embed = table(STAMP_TABLE_SIZES["weekday"], d_model)
        self.day_embed = table(STAMP_TABLE_SIZES["day"], d_model)
        self.month_embed = table(STAMP_TABLE_SIZES["month"], d_model)

    def forward(self, stamp: Tensor) -> Tensor:
        """stamp [B, T, 5] (any numeric dtype holding integers) -> [B, T, D]."""
        s = stamp.long()
        return (
            self.hour_embed(s[..., 1])
            + self.weekday_embed(s[..., 2])
            + self.day_embed(s[..., 3])
            + self.month_embed(s[..., 4])
            + self.minute_embed(s[..., 0])
        )
