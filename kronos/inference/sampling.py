"""Choosing the next token from logits: temperature, top-k and nucleus (top-p) filtering."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_from_logits(
    logits: Tensor,
    T: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample one token per row: logits [N, V] -> int64 [N].

    Logits are divided by ``T``. If ``top_k > 0`` only the top_k logits are kept (``top_p`` is then
    ignored); else if ``top_p < 1`` tokens are kept, in descending order, while the probability of the
    tokens before them is at most top_p (the most likely token always stays). ``top_k == 1`` is
    greedy: the arg-max, with no randomness drawn.
    """
    if T <= 0:
        raise ValueError(f"temperature T must be > 0, got {T}; use top_k=1 for greedy decoding")
    if top_k == 1:
        return logits.argmax(dim=-1)
    scaled = logits.float() / T
    if top_k > 0:
        kth = torch.topk(scaled, min(top_k, scaled.shape[-1]), dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    elif top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = torch.zeros_like(cumulative, dtype=torch.bool)
        drop_sorted[..., 1:] = cumulative[..., :-1] > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scaled = scaled.masked_fill(drop, float("-inf"))
    return torch.multinomial(scaled.softmax(dim=-1), 1, generator=generator)[:, 0]
