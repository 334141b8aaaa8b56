"""Token tables initialised from the tokens' binary codes: what a predictor trained from scratch starts from.

A Kronos token is a binary code: s1 is the first ``s1_bits`` bits of the tokenizer's spherical quantisation,
s2 the rest, and the id's binary digits are those bits (``BSQuantizer.bits_to_ids``: dimension 0 is the least
significant). The reference initialises the predictor's token embeddings and output heads as unrelated random
rows, so each of the 2**bits tokens has to be learned on its own from the (few, noisy) windows it occurs in.
:func:`init_from_codes` starts every row as a linear function of its token's bits instead: tokens that share
bits start close, and the heads' logits start as a sum over bits (a factorised distribution, one Bernoulli per
bit). Training is free to leave that structure; the weights keep the published format (plain tables).
Chosen with ``model.predictor.init=codes`` for predictors trained from scratch (``default``: the reference).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kronos.models.kronos_model import Kronos

INITS = ("default", "codes")


def bit_matrix(bits: int) -> Tensor:
    """The codes of every id of ``bits`` bits: float32 [2**bits, bits] of +-1 (column k: bit k of the id)."""
    ids = torch.arange(2**bits, dtype=torch.int64)[:, None]
    return ((ids >> torch.arange(bits, dtype=torch.int64)) & 1).float() * 2.0 - 1.0


def init_from_codes(model: Kronos, seed: int = 0) -> Kronos:
    """Set the token embeddings ``embedding.emb_s{1,2}`` and the heads ``head.proj_s{1,2}`` of ``model`` (in place)
    to ``bit_matrix(bits) @ W`` with W random, keeping each table's element scale (embeddings N(0, 1) per
    element as ``nn.Embedding``; head rows the std of their default init; head biases 0). Returns ``model``."""
    generator = torch.Generator().manual_seed(seed)
    d_model = model.d_model
    pairs = ((model.embedding.emb_s1, model.head.proj_s1, model.s1_bits),
             (model.embedding.emb_s2, model.head.proj_s2, model.s2_bits))
    with torch.no_grad():
        for embedding, head, bits in pairs:
            codes = bit_matrix(bits)                                                  # [V, bits]
            w_in = torch.randn(bits, d_model, generator=generator) / math.sqrt(bits)
            embedding.weight.copy_((codes @ w_in).to(embedding.weight.dtype))
            scale = float(head.weight.std())
            w_out = torch.randn(bits, d_model, generator=generator) * (scale / math.sqrt(bits))
            head.weight.copy_((codes @ w_out).to(head.weight.dtype))
            if head.bias is not None:
                head.bias.zero_()
    return model
