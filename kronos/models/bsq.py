"""Binary spherical quantisation (BSQ) of the tokenizer's latent, in Kronos' two-token (half) mode.

Shapes: B batch, T tokens, K = s1_bits + s2_bits code dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LOG_EPS = 1e-8


@dataclass
class QuantizerOutput:
    """What :class:`BSQuantizer` returns: codes, ids and the loss terms (scalars)."""

    quantized: Tensor  # [B, T, K], entries +-1/sqrt(K), straight-through gradient
    s1_ids: Tensor  # [B, T] int64
    s2_ids: Tensor  # [B, T] int64
    bsq_loss: Tensor
    commit_loss: Tensor
    sample_entropy: Tensor
    codebook_entropy: Tensor


def _binary_entropy(p: Tensor) -> Tensor:
    return -p * torch.log(p + _LOG_EPS) - (1 - p) * torch.log(1 - p + _LOG_EPS)


class BinarySphericalQuantizer(nn.Module):
    """Sign quantisation on the unit sphere plus the BSQ commitment and entropy terms."""

    def __init__(self, embed_dim: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int) -> None:
        super().__init__()
        if embed_dim % group_size:
            raise ValueError(f"s1_bits + s2_bits = {embed_dim} must be divisible by group_size = {group_size}")
        self.embed_dim = embed_dim
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        self.group_size = group_size
        self.register_buffer("basis", 2 ** torch.arange(embed_dim - 1, -1, -1, dtype=torch.int64))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1, dtype=torch.int64))
        # Every +-1 sub-code of one group, scaled like the codes: [2^group_size, group_size].
        bits = (torch.arange(2**group_size)[:, None] & self.group_basis) != 0
        self.register_buffer("group_codebook", (bits.float() * 2 - 1) / math.sqrt(embed_dim), persistent=False)

    def quantize(self, z: Tensor) -> Tensor:
        """z [..., K] on the unit sphere -> straight-through +-1/sqrt(K) codes [..., K]."""
        hard = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return (z + (hard - z).detach()) / math.sqrt(self.embed_dim)

    def losses(self, z: Tensor, quantized: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(bsq_loss, commit, sample_entropy, codebook_entropy) for z, quantized [B, T, K]."""
        commit = ((quantized.detach() - z) ** 2).sum(dim=-1).mean()
        p = torch.sigmoid(-4 * z / math.sqrt(self.embed_dim))
        sample_entropy = _binary_entropy(p).sum(dim=-1).mean()
        groups = z.reshape(-1, self.embed_dim // self.group_size, self.group_size)
        probs = (2 * groups @ self.group_codebook.T).softmax(dim=-1).mean(dim=0)
        codebook_entropy = (-probs * torch.log(probs + _LOG_EPS)).sum()
        bsq = self.beta * commit + self.zeta * (self.gamma0 * sample_entropy - self.gamma * codebook_entropy)
        return bsq, commit, sample_entropy, codebook_entropy


class BSQuantizer(nn.Module):
    """Normalise, quantise, and turn codes into (s1, s2) ids and back (half mode)."""

    def __init__(
        self, s1_bits: int, s2_bits: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int
    ) -> None:
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = BinarySphericalQuantizer(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)

    def forward(self, z: Tensor, with_losses: bool = True) -> QuantizerOutput:
        """z [B, T, K] (unnormalised latent) -> codes, ids and (optionally, else zeros) losses."""
        z = F.normalize(z, dim=-1)
        quantized = self.bsq.quantize(z)
        s1_ids = self.bits_to_ids(quantized[..., : self.s1_bits])
        s2_ids = self.bits_to_ids(quantized[..., self.s1_bits :])
        if with_losses:
            bsq, commit, sample_h, codebook_h = self.bsq.losses(z, quantized)
        else:
            bsq = commit = sample_h = codebook_h = z.new_zeros(())
        return QuantizerOutput(quantized, s1_ids, s2_ids, bsq, commit, sample_h, codebook_h)

    @staticmethod
    def bits_to_ids(codes: Tensor) -> Tensor:
        """codes [..., n] (+-) -> int64 ids [...]; dimension 0 is the least significant bit."""
        weights = 2 ** torch.arange(codes.shape[-1], device=codes.device, dtype=torch.int64)
        return ((codes >= 0).long() * weights).sum(dim=-1)

    def ids_to_codes(self, s1_ids: Tensor, s2_ids: Tensor) -> Tensor:
        """(s1_ids, s2_ids) [B, T] -> codes [B, T, K] with entries +-1/sqrt(K)."""
        bits = [
            (ids[..., None] & (2 ** torch.arange(n, device=ids.device, dtype=torch.int64))) != 0
            for ids, n in ((s1_ids, self.s1_bits), (s2_ids, self.s2_bits))
        ]
        return (torch.cat(bits, dim=-1).float() * 2 - 1) / math.sqrt(self.codebook_dim)
