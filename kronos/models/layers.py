"""Transformer building blocks shared by the Kronos tokenizer and predictor.

Shapes: B batch, T query length, S key length, D d_model, H heads, hd = D / H.
Attention layers take optional rotary ``positions`` [B, T] (default 0..T-1), an optional boolean
``attn_mask`` [B, 1, T, S] (True = may attend) and, for cached decoding, preallocated key/value
buffers [B, H, capacity, hd] written at columns ``start .. start+T`` (see kronos.models.kv_cache).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KVBuffers = tuple[Tensor, Tensor]


class RMSNorm(nn.Module):
    """``w * x * rsqrt(mean(x^2) + eps)`` over the last dim, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """x [..., D] -> [..., D]."""
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: ``dropout(w2(silu(w1 x) * w3 x))``, no biases."""

    def __init__(self, d_model: int, ff_dim: int, dropout_p: float = 0.0) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, T, D] -> [B, T, D]."""
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over a head dimension ``dim`` (saved ``inv_freq`` buffer)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def cos_sin(self, length: int, positions: Tensor | None, device: torch.device) -> tuple[Tensor, Tensor]:
        """Rotation tables: [1, 1, length, hd] for positions 0..length-1, else [B, 1, T, hd] from positions [B, T]."""
        if positions is None:
            angles = torch.outer(torch.arange(length, device=device, dtype=self.inv_freq.dtype), self.inv_freq)
            angles = angles[None, None]
        else:
            angles = (positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq)[:, None]
        emb = torch.cat((angles, angles), dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """x [B, H, T, hd] rotated: ``x*cos + rotate_half(x)*sin``."""
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class _Projections(nn.Module):
    """Biased q/k/v/out projections split into ``n_heads`` heads."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float, resid_dropout_p: float) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(self.head_dim)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def heads(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, H, T, hd]."""
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def merge(self, attn: Tensor) -> Tensor:
        """[B, H, T, hd] -> out_proj -> dropout -> [B, T, D]."""
        b, _, t, _ = attn.shape
        return self.resid_dropout(self.out_proj(attn.transpose(1, 2).reshape(b, t, self.d_model)))

    def sdpa(self, q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, causal: bool) -> Tensor:
        dropout_p = self.attn_dropout_p if self.training else 0.0
        if dropout_p > 0 and q.device.type == "mps":
            # MPS's fused attention kernels have no dropout: spell the attention out there.
            return explicit_attention(q, k, v, attn_mask, causal, dropout_p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=causal)


def explicit_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, causal: bool, dropout_p: float
) -> Tensor:
    """Scaled dot-product attention without fused kernels: q [B, H, T, hd], k/v [B, H, S, hd] -> [B, H, T, hd].

    ``attn_mask`` bool [B, 1, T, S] (True = may attend); ``causal`` aligns the T queries with the last
    T keys. Dropout is applied to the attention weights, as ``F.scaled_dot_product_attention`` does.
    """
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if causal:
        t, s = q.shape[-2], k.shape[-2]
        keep = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(diagonal=s - t)
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return F.dropout(scores.softmax(dim=-1), p=dropout_p) @ v


class SelfAttention(_Projections):
    """Causal multi-head self-attention with rotary q/k and an optional key/value cache."""

    def forward(
        self,
        x: Tensor,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        kv: KVBuffers | None = None,
        start: int = 0,
        kv_len: int | None = None,
    ) -> Tensor:
        """x [B, T, D] -> [B, T, D].

        Without ``attn_mask`` the T tokens attend causally among themselves (and, with ``kv``, to
        every cached column before ``start``). With ``attn_mask`` [B, 1, T, S] (S = start + T when
        cached) the mask alone decides, so it must already be causal. ``kv_len`` (default start + T)
        is how many cached columns a single new query attends: the whole buffer for a ring cache.
        """
        q, k, v = self.heads(self.q_proj(x)), self.heads(self.k_proj(x)), self.heads(self.v_proj(x))
        cos, sin = self.rotary.cos_sin(x.shape[1], positions, x.device)
        q, k = RotaryEmbedding.rotate(q, cos, sin), RotaryEmbedding.rotate(k, cos, sin)
        if kv is not None:
            end = start + x.shape[1]
            kv[0][:, :, start:end].copy_(k)
            kv[1][:, :, start:end].copy_(v)
            keep = end if kv_len is None else kv_len
            k, v = kv[0][:, :, :keep], kv[1][:, :, :keep]
        # A single new query may see every cached key, so causality only matters for T > 1.
        causal = attn_mask is None and x.shape[1] > 1
        if causal and k.shape[2] != x.shape[1]:
            raise ValueError("a multi-token cached write needs an explicit causal attn_mask")
        return self.merge(self.sdpa(q, k, v, attn_mask, causal))


class CrossAttention(_Projections):
    """Multi-head attention of a query sequence over a key/value sequence (dependency-aware layer)."""

    def forward(self, query: Tensor, context: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Training path: query [B, T, D] over context [B, T, D], causal, rotary positions 0..T-1 -> [B, T, D].

        attn_mask: optional bool [B, 1, T, T] (True = may attend) that replaces the plain causal mask,
        so it must already be causal (see :func:`causal_padding_mask`).
        """
        q, k, v = self.heads(self.q_proj(query)), self.heads(self.k_proj(context)), self.heads(self.v_proj(context))
        cos, sin = self.rotary.cos_sin(query.shape[1], None, query.device)
        q, k = RotaryEmbedding.rotate(q, cos, sin), RotaryEmbedding.rotate(k, cos, sin)
        return self.merge(self.sdpa(q, k, v, attn_mask, causal=attn_mask is None))

    def project_context(self, context: Tensor) -> KVBuffers:
        """Inference keys/values (no rotary): context [B, S, D] -> ([B, H, S, hd], [B, H, S, hd])."""
        return self.heads(self.k_proj(context)), self.heads(self.v_proj(context))

    def attend(self, query: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """Inference path: query [B, 1, D] over every key [B, H, S, hd] (no rotary, no causal mask) -> [B, 1, D].

        key_mask: optional bool [B, 1, 1, S], False for padding columns.
        """
        q = self.heads(self.q_proj(query))
        return self.merge(self.sdpa(q, keys, values, key_mask, causal=False))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(
        self,
        x: Tensor,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        kv: KVBuffers | None = None,
        start: int = 0,
        kv_len: int | None = None,
    ) -> Tensor:
        """x [B, T, D] -> [B, T, D]; see :meth:`SelfAttention.forward` for the other arguments."""
        x = x + self.self_attn(self.norm1(x), positions, attn_mask, kv, start, kv_len)
        return x + self.ffn(self.norm2(x))


def padded_causal_mask(starts: Tensor, length: int) -> Tensor:
    """Causal mask for left-padded rows: bool [B, 1, length, length].

    starts [B]: first real column of each row. Real queries see real keys up to themselves; a
    padding query sees only itself, so no row of the softmax is empty (its output is never used).
    """
    cols = torch.arange(length, device=starts.device)
    return causal_padding_mask(cols[None, :] >= starts[:, None])


def padded_positions(starts: Tensor, length: int) -> Tensor:
    """Rotary positions counting from 0 at each row's first real column: int64 [B, length]."""
    cols = torch.arange(length, device=starts.device)
    return (cols[None, :] - starts[:, None]).clamp_min(0)


def causal_padding_mask(padding_mask: Tensor) -> Tensor:
    """Causal attention mask from a per-token validity mask: bool [B, T] (True = real token) -> [B, 1, T, T].

    Queries see real keys up to themselves; every query also sees itself, so no softmax row is
    empty (outputs at padding positions are meaningless and must be ignored by the caller).
    """
    length = padding_mask.shape[1]
    cols = torch.arange(length, device=padding_mask.device)
    causal = cols[None, :] <= cols[:, None]
    diagonal = torch.eye(length, dtype=torch.bool, device=padding_mask.device)
    return ((causal & padding_mask.bool()[:, None, :]) | diagonal)[:, None]
