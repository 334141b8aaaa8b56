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
    """Training-time outputs of :meth:`KronosTokenizer.forward`."""

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

    def encode(
        self, x: Tensor, positions: Tensor | None = None, attn_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """x [B, T, d_in] normalised -> (s1_ids [B, T], s2_ids [B, T]) int64.

        positions [B, T] / attn_mask [B, 1, T, T] (causal) serve left-padded batches.
        """
        out = self.tokenizer(self._latent(x, positions, attn_mask), with_losses=False)
        return out.s1_ids, out.s2_ids

    def decode(
        self, s1_ids: Tensor, s2_ids: Tensor, positions: Tensor | None = None, attn_mask: Tensor | None = None
    ) -> Tensor:
        """(s1_ids, s2_ids) [B, T] -> reconstruction [B, T, d_in] (normalised units)."""
        codes = self.tokenizer.ids_to_codes(s1_ids, s2_ids)
        return self._decode_codes(self.post_quant_embed(codes), positions, attn_mask)

    def forward(self, x: Tensor) -> TokenizerOutput:
        """x [B, T, d_in] -> reconstructions from s1 bits and from all bits, ids and BSQ loss terms."""
        q = self.tokenizer(self._latent(x, None, None))
        recon_s1 = self._decode_codes(self.post_quant_embed_pre(q.quantized[..., : self.s1_bits]), None, None)
        recon = self._decode_codes(self.post_quant_embed(q.quantized), None, None)
        return TokenizerOutput(
            recon_s1, recon, q.quantized, q.s1_ids, q.s2_ids,
            q.bsq_loss, q.commit_loss, q.sample_entropy, q.codebook_entropy,
        )

    def compute_loss(self, x: Tensor) -> dict[str, Tensor]:
        """Training loss on x [B, T, d_in]: ``(mse(recon_s1, x) + mse(recon, x) + bsq_loss) / 2`` and its parts (scalars)."""
        out = self(x)
        recon_loss_s1 = F.mse_loss(out.recon_s1, x)
        recon_loss = F.mse_loss(out.recon, x)
        return {
            "loss": (recon_loss_s1 + recon_loss + out.bsq_loss) / 2,
            "recon_loss_s1": recon_loss_s1,
            "recon_loss": recon_loss,
            "bsq_loss": out.bsq_loss,
            "commit_loss": out.commit_loss,
            "sample_entropy": out.sample_entropy,
            "codebook_entropy": out.codebook_entropy,
        }
