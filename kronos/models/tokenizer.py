"""KronosTokenizer: turns normalised K-lines into two discrete tokens per row (s1 coarse, s2 fine).

Shapes: B batch, T rows, d_in features (6), K = s1_bits + s2_bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from kronos.models.bsq import BSQuantizer
from kronos.models.hub import HubModel
from kronos.models.layers import TransformerBlock


@dataclass
class TokenizerOutput:
    """Training-time outputs of :meth:`KronosTokenizer.run`."""

    recon_s1: Tensor  # [B, T, d_in], decoded from the s1 bits alone
    recon: Tensor  # [B, T, d_in], decoded from all K bits
    quantized: Tensor  # [B, T, K]
    s1_ids: Tensor  # [B, T]
    s2_ids: Tensor  # [B, T]
    bsq_loss: Tensor
    commit_loss: Tensor
    sample_entropy: Tensor
    codebook_entropy: Tensor


class KronosTokenizer(HubModel):
    """Causal transformer encoder -> BSQ -> causal transformer decoder (published Kronos layout)."""

    def __init__(
        self,
        d_in: int,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        n_enc_layers: int,
        n_dec_layers: int,
        ffn_dropout_p: float,
        attn_dropout_p: float,
        resid_dropout_p: float,
        s1_bits: int,
        s2_bits: int,
        beta: float,
        gamma0: float,
        gamma: float,
        zeta: float,
        group_size: int,
    ) -> None:
        super().__init__()
        if s1_bits != s2_bits:
            raise ValueError(f"half-mode tokens need s1_bits == s2_bits, got {s1_bits} and {s2_bits}")
        self.d_in, self.s1_bits, self.s2_bits = d_in, s1_bits, s2_bits
        codebook_dim = s1_bits + s2_bits

        def blocks(n: int) -> nn.ModuleList:
            # The published layout builds one block fewer than the configured layer count.
            return nn.ModuleList(
                TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)
                for _ in range(n - 1)
            )

        self.embed = nn.Linear(d_in, d_model)
        self.encoder = blocks(n_enc_layers)
        self.quant_embed = nn.Linear(d_model, codebook_dim)
        self.tokenizer = BSQuantizer(s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size)
        self.post_quant_embed_pre = nn.Linear(s1_bits, d_model)
        self.post_quant_embed = nn.Linear(codebook_dim, d_model)
        self.decoder = blocks(n_dec_layers)
        self.head = nn.Linear(d_model, d_in)

    def _latent(self, x: Tensor, positions: Tensor | None, attn_mask: Tensor | None) -> Tensor:
        h = self.embed(x)
        for block in self.encoder:
            h = block(h, positions, attn_mask)
        return self.quant_embed(h)

    def _decode_codes(self, codes_embedded: Tensor, positions: Tensor | None, attn_mask: Tensor | None) -> Tensor:
        h = codes_embedded
        for block in self.decoder:
            h = block(h, positions, attn_mask)
        return self.head(h)

    def encode_ids(
        self, x: Tensor, positions: Tensor | None = None, attn_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x [B, T, d_in] normalised -> (s1_ids [B, T], s2_ids [B, T]) int64.

        positions [B, T] / attn_mask [B, 1, T, T] (causal) serve left-padded batches.
        """
        out = self.tokenizer(self._latent(x, positions, attn_mask), with_losses=False)
        return out.s1_ids, out.s2_ids

    def decode_ids(
        self, s1_ids: Tensor, s2_ids: Tensor, positions: Tensor | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """(s1_ids, s2_ids) [B, T] -> reconstruction [B, T, d_in] (normalised units)."""
        codes = self.tokenizer.ids_to_codes(s1_ids, s2_ids)
        return self._decode_codes(self.post_quant_embed(codes), positions, attn_mask)

    def run(self, x: Tensor) -> TokenizerOutput:
        """x [B, T, d_in] -> reconstructions from s1 bits and from all bits, ids and BSQ loss terms."""
        q = self.tokenizer(self._latent(x, None, None))
        recon_s1 = self._decode_codes(self.post_quant_embed_pre(q.quantized[..., : self.s1_bits]), None, None)
        recon = self._decode_codes(self.post_quant_embed(q.quantized), None, None)
        return TokenizerOutput(
            recon_s1, recon, q.quantized, q.s1_ids, q.s2_ids,
            q.bsq_loss, q.commit_loss, q.sample_entropy, q.codebook_entropy,
        )

    # Reference-compatible surface (upstream ``KronosTokenizer``): full indices hold all K bits,
    # s1's bits in the low s1_bits positions (index = s1 + s2 * 2^s1_bits); ``half`` splits them.

    def encode(self, x: Tensor, half: bool = False) -> Tensor | list[Tensor]:
        """x [B, T, d_in] -> indices [B, T] over K = s1_bits + s2_bits bits, or with ``half`` [s1_ids, s2_ids]."""
        s1_ids, s2_ids = self.encode_ids(x)
        return [s1_ids, s2_ids] if half else s1_ids + (s2_ids << self.s1_bits)

    def indices_to_bits(self, x: Tensor | list[Tensor], half: bool = False) -> Tensor:
        """Indices (as :meth:`encode` returns them) -> codes [B, T, K] with entries +-1/sqrt(K)."""
        s1_ids, s2_ids = self._split_indices(x, half)
        return self.tokenizer.ids_to_codes(s1_ids, s2_ids)

    def decode(self, x: Tensor | list[Tensor], half: bool = False) -> Tensor:
        """Indices (full [B, T], or with ``half`` [s1_ids, s2_ids]) -> reconstruction [B, T, d_in]."""
        return self.decode_ids(*self._split_indices(x, half))

    def forward(self, x: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor, Tensor]:
        """The reference tuple for x [B, T, d_in]: ``((z_pre, z), bsq_loss, quantized, z_indices)``.

        z_pre / z [B, T, d_in]: reconstructions from the s1 bits / all bits; bsq_loss a scalar;
        quantized [B, T, K]; z_indices [B, T] full indices (see :meth:`encode`). :meth:`run` returns
        the same with the loss terms broken out.
        """
        out = self.run(x)
        return (out.recon_s1, out.recon), out.bsq_loss, out.quantized, out.s1_ids + (out.s2_ids << self.s1_bits)

    def _split_indices(self, x: Tensor | list[Tensor], half: bool) -> tuple[Tensor, Tensor]:
        """Full indices [B, T] or [s1_ids, s2_ids] (``half``) -> (s1_ids, s2_ids) [B, T] int64."""
        if half:
            if not isinstance(x, (list, tuple)) or len(x) != 2:
                raise ValueError("half=True takes the pair [s1_ids, s2_ids]; pass full indices with half=False")
            return x[0].long(), x[1].long()
        if isinstance(x, (list, tuple)):
            raise ValueError("half=False takes one tensor of full indices; pass [s1_ids, s2_ids] with half=True")
        x = x.long()
        return x & ((1 << self.s1_bits) - 1), x >> self.s1_bits

    def compute_loss(self, x: Tensor, step_weight: float = 0.0) -> dict[str, Tensor]:
        """Training loss on x [B, T, d_in]: ``(mse(recon_s1, x) + mse(recon, x) + bsq_loss) / 2`` and its parts
        (scalars), plus ``step_weight * step_loss`` where ``step_loss = mse(diff(recon), diff(x))`` over time
        (the error of consecutive changes, e.g. one step's return in the price channels; 0: the reference
        objective, and ``step_loss`` is still reported)."""
        out = self.run(x)
        recon_loss_s1 = F.mse_loss(out.recon_s1, x)
        recon_loss = F.mse_loss(out.recon, x)
        step_loss = F.mse_loss(out.recon.diff(dim=1), x.diff(dim=1)) if x.shape[1] > 1 else recon_loss * 0.0
        return {
            "loss": (recon_loss_s1 + recon_loss + out.bsq_loss) / 2 + step_weight * step_loss,
            "step_loss": step_loss,
            "recon_loss_s1": recon_loss_s1,
            "recon_loss": recon_loss,
            "bsq_loss": out.bsq_loss,
            "commit_loss": out.commit_loss,
            "sample_entropy": out.sample_entropy,
            "codebook_entropy": out.codebook_entropy,
        }
