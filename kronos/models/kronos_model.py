"""Kronos: the decoder-only transformer that predicts the next candle's (s1, s2) tokens.

Shapes: B batch, T tokens, D d_model, V1 = 2^s1_bits, V2 = 2^s2_bits, stamps [B, T, 5].
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronos.models.embedding import HierarchicalEmbedding, TemporalEmbedding
from kronos.models.hub import HubModel
from kronos.models.kv_cache import KVCache
from kronos.models.layers import CrossAttention, KVBuffers, RMSNorm, TransformerBlock, causal_padding_mask

DEP_LAYER_HEADS = 4  # the published dependency-aware layer uses 4 heads whatever n_heads is


class DependencyAwareLayer(nn.Module):
    """``norm(h + cross_attn(query=emb_s1(s1), keys/values=h))``: conditions s2 on the chosen s1."""

    def __init__(self, d_model: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(d_model, DEP_LAYER_HEADS, attn_dropout_p, resid_dropout_p)
        self.norm = RMSNorm(d_model)

    def forward(self, h: Tensor, sibling: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Training path: h, sibling [B, T, D] -> [B, T, D] (causal, rotary; attn_mask bool [B, 1, T, T])."""
        return self.norm(h + self.cross_attn(sibling, h, attn_mask))


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
        stamp: Tensor | None,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        kv: list[KVBuffers] | None = None,
        start: int = 0,
        kv_len: int | None = None,
    ) -> Tensor:
        """Transformer body: (s1_ids, s2_ids) [B, T], stamp [B, T, 5] or None -> final-norm hidden states [B, T, D].

        positions [B, T], attn_mask [B, 1, T, S] and per-layer kv buffers with write column ``start``
        serve padded batches and cached decoding; ``kv_len`` cached columns are attended (default
        start + T; see :class:`~kronos.models.layers.SelfAttention`).
        """
        x = self.embedding(s1_ids, s2_ids)
        if stamp is not None:  # the reference makes time features optional
            x = x + self.time_emb(stamp)
        x = self.token_drop(x)
        for i, block in enumerate(self.transformer):
            x = block(x, positions, attn_mask, None if kv is None else kv[i], start, kv_len)
        return self.norm(x)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (hidden states and cache buffers use it)."""
        return self.norm.weight.dtype

    def new_kv_cache(self, batch: int, capacity: int, device: torch.device | str | None = None) -> KVCache:
        """An empty cache for ``batch`` rows and ``capacity`` window columns, sized from this model's config
        (``n_layers``, ``n_heads``, ``d_model`` and the dependency layer's heads), on ``device`` (default: the
        model's)."""
        return KVCache.allocate(n_layers=self.n_layers, n_heads=self.n_heads, dep_heads=DEP_LAYER_HEADS,
                                d_model=self.d_model, batch=batch, capacity=capacity,
                                device=self.norm.weight.device if device is None else device, dtype=self.dtype)

    def dependency_context(self, h: Tensor) -> KVBuffers:
        """Keys/values of the dependency layer over hidden states h [B, T, D] -> ([B, 4, T, D/4], [B, 4, T, D/4])
        (no rotary): what :meth:`s2_logits_at` attends."""
        return self.dep_layer.cross_attn.project_context(h)

    def decode_step(
        self,
        s1_ids: Tensor,
        s2_ids: Tensor,
        stamp: Tensor | None,
        positions: Tensor | None = None,
        attn_mask: Tensor | None = None,
        cache: KVCache | None = None,
        start: int = 0,
        kv_len: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One decoding step over T new tokens [B, T] (a prefill, one cached token, or a whole window).

        Args:
            positions: rotary positions [B, T] (None: 0..T-1); attn_mask: [B, 1, T, S] bool, or the key mask
                [B, 1, 1, S] of a cached step (None: plain causal attention).
            cache: from :meth:`new_kv_cache`; the tokens' keys/values are written at columns
                ``start .. start+T`` and columns ``0 .. kv_len`` (default start+T) are attended. None: no cache.
        Returns:
            (hidden states [B, T, D], dependency keys, dependency values [B, 4, S, D/4]) over the attended
            columns (the T new ones without a cache).
        """
        h = self.hidden(s1_ids, s2_ids, stamp, positions, attn_mask, None if cache is None else cache.layers,
                        start, kv_len)
        keys, values = self.dependency_context(h)
        if cache is not None:
            keys, values = cache.write_dep(keys, values, start, kv_len)
        return h, keys, values

    def s1_logits(self, h: Tensor) -> Tensor:
        """h [..., D] -> s1 logits [..., V1]."""
        return self.head.proj_s1(h)

    def s2_logits_at(
        self, h_last: Tensor, s1_ids: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None
    ) -> Tensor:
        """Inference s2 logits for the newest position.

        h_last [B, 1, D]; s1_ids [B] the chosen s1; keys/values [B, 4, S, D/4] from
        :meth:`dependency_context` (or :meth:`decode_step`) over the whole window (no rotary, no causal
        mask); key_mask bool [B, 1, 1, S] or None -> [B, V2].
        """
        sibling = self.embedding.emb_s1(s1_ids)[:, None]
        attn = self.dep_layer.cross_attn.attend(sibling, keys, values, key_mask)
        return self.head.proj_s2(self.dep_layer.norm(h_last + attn))[:, 0]

    def teacher_forced_logits(
        self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor | None, s1_targets: Tensor | None,
        attn_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Training path: (s1_ids, s2_ids) [B, T], stamp [B, T, 5] -> (s1_logits [B, T, V1], s2_logits [B, T, V2]).

        s2 is conditioned, through a causal dependency layer, on ``s1_targets`` [B, T] (teacher
        forcing: the true next s1) or, when None, on an s1 sampled from the predicted distribution.
        attn_mask: optional causal bool [B, 1, T, T] for padded rows (see ``causal_padding_mask``).
        """
        h = self.hidden(s1_ids, s2_ids, stamp, attn_mask=attn_mask)
        s1_logits = self.s1_logits(h)
        if s1_targets is None:
            s1_targets = self._sample_s1(s1_logits)
        s2_logits = self.head.proj_s2(self.dep_layer(h, self.embedding.emb_s1(s1_targets), attn_mask))
        return s1_logits, s2_logits

    @staticmethod
    def _sample_s1(s1_logits: Tensor) -> Tensor:
        """One s1 per position drawn from softmax(s1_logits [B, T, V1]) (no gradient) -> [B, T]."""
        probs = F.softmax(s1_logits.detach().float(), dim=-1)
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).view(s1_logits.shape[:-1])

    # Reference-compatible surface (upstream ``Kronos``). ``padding_mask`` is bool [B, T], True for
    # real tokens (the reference hands it to scaled_dot_product_attention, where True means "attend").
    # The dependency layer is causal in every mode here; the reference drops its causal mask in eval
    # mode, which lets position t's s2 logits see hidden states of later positions.

    def forward(
        self,
        s1_ids: Tensor,
        s2_ids: Tensor,
        stamp: Tensor | None = None,
        padding_mask: Tensor | None = None,
        use_teacher_forcing: bool = False,
        s1_targets: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(s1_ids, s2_ids) [B, T], stamp [B, T, 5] -> (s1_logits [B, T, V1], s2_logits [B, T, V2]).

        With ``use_teacher_forcing`` s2 is conditioned on ``s1_targets`` [B, T] (the true next s1);
        otherwise on an s1 sampled from each position's predicted s1 distribution, as the reference does.
        """
        if use_teacher_forcing and s1_targets is None:
            raise ValueError("use_teacher_forcing=True needs s1_targets (the true next s1 ids, [B, T])")
        if not use_teacher_forcing and s1_targets is not None:
            warnings.warn("s1_targets is ignored unless use_teacher_forcing=True (as in the reference Kronos): "
                          "s2 is conditioned on a sampled s1", stacklevel=2)
        mask = None if padding_mask is None else causal_padding_mask(padding_mask)
        return self.teacher_forced_logits(s1_ids, s2_ids, stamp, s1_targets if use_teacher_forcing else None, mask)

    def decode_s1(
        self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor | None = None, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(s1_ids, s2_ids) [B, T], stamp [B, T, 5] -> (s1_logits [B, T, V1], context [B, T, D]).

        ``context`` is the final-norm hidden state that :meth:`decode_s2` conditions s2 on.
        """
        mask = None if padding_mask is None else causal_padding_mask(padding_mask)
        h = self.hidden(s1_ids, s2_ids, stamp, attn_mask=mask)
        return self.s1_logits(h), h

    def decode_s2(self, context: Tensor, s1_ids: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """s2 logits given the chosen s1: context [B, S, D] (from :meth:`decode_s1`), s1_ids [B, T] -> [B, S, V2].

        T == 1 (autoregressive decoding, as the reference's inference loop calls it): the single
        query attends to every position of ``context`` without rotation or causal mask, and the
        logits at position S-1 are the newest step's. T == S:
        the training path, position t conditioned on ``s1_ids[:, t]`` and context up to t.
        padding_mask bool [B, S], True for real tokens.
        """
        length = context.shape[1]
        if s1_ids.shape[1] == 1:
            keys, values = self.dep_layer.cross_attn.project_context(context)
            key_mask = None if padding_mask is None else padding_mask.bool()[:, None, None, :]
            attn = self.dep_layer.cross_attn.attend(self.embedding.emb_s1(s1_ids), keys, values, key_mask)
            # As the reference: the one attention output is added at every position ([B, S, V2]);
            # only the last position is the newest step's s2 logits (callers take [:, -1]).
            return self.head.proj_s2(self.dep_layer.norm(context + attn))
        if s1_ids.shape[1] != length:
            raise ValueError(f"decode_s2 takes s1_ids of length 1 or of the context's length {length}, "
                             f"got {s1_ids.shape[1]}")
        mask = None if padding_mask is None else causal_padding_mask(padding_mask)
        return self.head.proj_s2(self.dep_layer(context, self.embedding.emb_s1(s1_ids), mask))

    def compute_loss(
        self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor, sampled_s1: bool = False, target_start: int = 1
    ) -> dict[str, Tensor]:
        """Next-token loss over a window: inputs rows 0..T-2, targets rows ``target_start``..T-1.

        s1_ids, s2_ids [B, T]; stamp [B, T, 5]. Returns scalars ``loss`` = (CE_s1 + CE_s2) / 2,
        ``s1_loss``, ``s2_loss``, ``s1_acc``, ``s2_acc``. ``sampled_s1`` conditions s2 on a sampled
        s1 (the reference fine-tuning scripts) instead of the true one. ``target_start`` = L (the
        lookback) scores only the horizon rows: every row still serves as context, but targets
        inside the lookback, normalised with statistics that include themselves, are not learned.
        """
        if not 1 <= target_start < s1_ids.shape[1]:
            raise ValueError(f"target_start={target_start} must lie in [1, {s1_ids.shape[1] - 1}] for windows of "
                             f"{s1_ids.shape[1]} rows")
        s1_in, s2_in, stamp_in = s1_ids[:, :-1], s2_ids[:, :-1], stamp[:, :-1]
        s1_next, s2_next = s1_ids[:, 1:], s2_ids[:, 1:]
        s1_logits, s2_logits = self.teacher_forced_logits(s1_in, s2_in, stamp_in, None if sampled_s1 else s1_next)
        # Logit position p predicts row p + 1: keep positions target_start - 1 .. T - 2.
        keep = slice(target_start - 1, None)
        s1_logits, s2_logits, s1_next, s2_next = s1_logits[:, keep], s2_logits[:, keep], s1_next[:, keep], s2_next[:, keep]
        s1_loss = F.cross_entropy(s1_logits.reshape(-1, s1_logits.shape[-1]), s1_next.reshape(-1))
        s2_loss = F.cross_entropy(s2_logits.reshape(-1, s2_logits.shape[-1]), s2_next.reshape(-1))
        return {
            "loss": (s1_loss + s2_loss) / 2,
            "s1_loss": s1_loss,
            "s2_loss": s2_loss,
            "s1_acc": (s1_logits.argmax(-1) == s1_next).float().mean(),
            "s2_acc": (s2_logits.argmax(-1) == s2_next).float().mean(),
        }
