"""Choosing the next token from logits: temperature, top-k and nucleus (top-p) filtering."""

from __future__ import annotations

import torch
from torch import Tensor

from kronos.inference.settings import SamplingSettings


def sample_from_logits(logits: Tensor, sampling: SamplingSettings, generator: torch.Generator | None = None) -> Tensor:
    """Sample one token per row: logits [N, V] -> int64 [N], as ``sampling`` (validated) says.

    ``generator``: made once per forecast by ``sampling.generator(device)`` (None: torch's global one).
    Logits are divided by ``T``. If ``top_k > 0`` only the top_k logits are kept (``top_p`` is then
    ignored); else if ``top_p < 1`` tokens are kept, in descending order, while the probability of the
    tokens before them is at most top_p (the most likely token always stays). ``top_k == 1`` is
    greedy: the arg-max, with no randomness drawn.
    """
    T, top_k, top_p = sampling.T, sampling.top_k, sampling.top_p
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
