"""Kronos: the decoder-only transformer that predicts the next candle's (s1, s2) tokens.

Shapes: B batch, T tokens, D d_model, V1 = 2^s1_bits, V2 = 2^s2_bits, stamps [B, T, 5].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronos.models.embedding import HierarchicalEmbedding, TemporalEmbedding
from kronos.models.hub import HubModel
from kronos.models.layers import CrossAttention, KVBuffers, RMSNorm, TransformerBlock

DEP_LAYER_HEADS = 4  # the published dependency-aware layer uses 4 heads whatever n_heads is


class DependencyAwareLayer(nn.Module):
    """``norm(h + cross_attn(query=emb_s1(s1), keys/values=h))``: conditions s2 on the chosen s1."""

    def __init__(self, d_model: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(d_model, DEP_LAYER_HEADS, attn_dropout_p, resid_dropout_p)
        self.norm = RMSNorm(d_model)

    def forward(self, h: Tensor, sibling: Tensor) -> Tensor:
        """Training path: h, sibling [B, T, D] -> [B, T, D] (causal, rotary)."""
        return self.norm(h + self.cross_attn(sibling, h))


class DualHead(nn.Module):
    """Linear heads for s1 and (after the dependency layer) s2 logits."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int) -> None:
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, 2**s1_bits)
        self.proj_s2 = nn.Linear(d_model, 2**s2_bits)


class Kronos(HubModel):
    """Hierarchical token embedding + time embedding -> causal transformer -> dual head."""

    def __init__(
        self,
        s1_bits: int,
        s2_bits: int,
        n_layers: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        token_dropout_p: float,
        learn_te: bool,
    ) -> None:
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.n_layers, self.d_model, self.n_heads = n_layers, d_model, n_heads
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.token_drop = nn.Dropout(token_dropout_p)
        self.transformer = nn.ModuleList(
            TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model, attn_dropout_p, resid_dropout_p)
        self.head = DualHead(s1_bits, s2_bits, d_model)

    def hidden(
        self,
        s1_ids: Tensor,
        s2_ids: Tensor,
        stamp: Tensor,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        kv: list[KVBuffers] | None = None,
        start: int = 0,
        kv_len: int | None = None,
    ) -> Tensor:
        """Transformer body: (s1_ids, s2_ids) [B, T], stamp [B, T, 5] -> final-norm hidden states [B, T, D].

        positions [B, T], attn_mask [B, 1, T, S] and per-layer kv buffers with write column ``start``
        serve padded batches and cached decoding; ``kv_len`` cached columns are attended (default
        start + T; see :class:`~kronos.models.layers.SelfAttention`).
        """
        x = self.token_drop(self.embedding(s1_ids, s2_ids) + self.time_emb(stamp))
        for i, block in enumerate(self.transformer):
            x = block(x, positions, attn_mask, None if kv is None else kv[i], start, kv_len)
        return self.norm(x)

    def s1_logits(self, h: Tensor) -> Tensor:
        """h [..., D] -> s1 logits [..., V1]."""
        return self.head.proj_s1(h)

    def s2_logits_at(
        self, h_last: Tensor, s1_ids: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None
    ) -> Tensor:
        """Inference s2 logits for the newest position.

        h_last [B, 1, D]; s1_ids [B] the chosen s1; keys/values [B, 4, S, D/4] from
        ``dep_layer.cross_attn.project_context(h)`` over the whole window (no rotary, no causal
        mask); key_mask bool [B, 1, 1, S] or None -> [B, V2].
        """
        sibling = self.embedding.emb_s1(s1_ids)[:, None]
        attn = self.dep_layer.cross_attn.attend(sibling, keys, values, key_mask)
        return self.head.proj_s2(self.dep_layer.norm(h_last + attn))[:, 0]

    def forward(
        self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor, s1_targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Training path: (s1_ids, s2_ids) [B, T], stamp [B, T, 5] -> (s1_logits [B, T, V1], s2_logits [B, T, V2]).

        s2 is conditioned, through a causal dependency layer, on ``s1_targets`` [B, T] (teacher
        forcing: the true next s1) or, when None, on an s1 sampled from the predicted distribution.
        """
        h = self.hidden(s1_ids, s2_ids, stamp)
        s1_logits = self.s1_logits(h)
        if s1_targets is None:
            probs = F.softmax(s1_logits.detach().float(), dim=-1)
            s1_targets = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).view(s1_ids.shape)
        s2_logits = self.head.proj_s2(self.dep_layer(h, self.embedding.emb_s1(s1_targets)))
        return s1_logits, s2_logits

    def compute_loss(self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor, sampled_s1: bool = False) -> dict[str, Tensor]:
        """Next-token loss over a window: inputs rows 0..T-2, targets rows 1..T-1.

        s1_ids, s2_ids [B, T]; stamp [B, T, 5]. Returns scalars ``loss`` = (CE_s1 + CE_s2) / 2,
        ``s1_loss``, ``s2_loss``, ``s1_acc``, ``s2_acc``. ``sampled_s1`` conditions s2 on a sampled
        s1 (the reference fine-tuning scripts) instead of the true one.
        """
        s1_in, s2_in, stamp_in = s1_ids[:, :-1], s2_ids[:, :-1], stamp[:, :-1]
        s1_next, s2_next = s1_ids[:, 1:], s2_ids[:, 1:]
        s1_logits, s2_logits = self(s1_in, s2_in, stamp_in, None if sampled_s1 else s1_next)
        s1_loss = F.cross_entropy(s1_logits.reshape(-1, s1_logits.shape[-1]), s1_next.reshape(-1))
        s2_loss = F.cross_entropy(s2_logits.reshape(-1, s2_logits.shape[-1]), s2_next.reshape(-1))
        return {
            "loss": (s1_loss + s2_loss) / 2,
            "s1_loss": s1_loss,
            "s2_loss": s2_loss,
            "s1_acc": (s1_logits.argmax(-1) == s1_next).float().mean(),
            "s2_acc": (s2_logits.argmax(-1) == s2_next).float().mean(),
        }
