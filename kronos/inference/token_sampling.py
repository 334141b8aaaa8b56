"""Choosing the next token from logits: temperature, top-k and nucleus (top-p) filtering.

Two sources of randomness draw the token once the distribution is filtered:

- a ``torch.Generator`` (the reference API: one stream for a whole call, so a series' tokens depend on what
  else was drawn before them);
- :class:`WindowDraws`, a counter-based generator for decision forecasts: the uniform behind a token is a
  hash of (window key, sample path, draw number), so a window's paths depend on the sampling seed, its
  instrument and its decision time only, never on its batch, the batch size, the order of batches, the
  process (rank) that draws it or a resume. The token is read from the filtered distribution by inverse
  CDF. Batching can still move a logit by a rounding error, which flips a token only when the uniform
  falls within that error of a CDF boundary (measured in ``scripts/bench_backtest.py``).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from kronos.inference.settings import SamplingSettings

_MASK32 = 0xFFFFFFFF


def window_key(seed: int, instrument: str, when_ns: int) -> int:
    """The 63-bit key of one decision window's draws: a hash of (sampling seed, instrument, decision time ns)."""
    digest = hashlib.blake2b(f"{int(seed)}|{instrument}|{int(when_ns)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def window_keys(seed: int, instruments: Iterable[str], when_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """int64 [B]: :func:`window_key` of each (instrument, decision time) pair."""
    return np.array([window_key(seed, str(i), int(t)) for i, t in zip(instruments, np.asarray(when_ns))],
                    dtype=np.int64)


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer finaliser (lowbias32) on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


class WindowDraws:
    """Counter-based uniforms for N = B*S rows (rows ``b*S .. b*S+S-1`` are window b's S sample paths).

    Args:
        keys: int64 [B] window keys (:func:`window_keys`).
        sample_count: S paths per window.

    Each call of :meth:`uniforms` is one draw number (generation draws s1 then s2 at every step, the same
    sequence for every window), so the k-th uniform of path s of window b is ``hash(keys[b], s, k)``.
    """

    def __init__(self, keys: Tensor | np.ndarray, sample_count: int) -> None:
        keys = torch.as_tensor(np.asarray(keys, dtype=np.int64))
        paths = torch.arange(sample_count, dtype=torch.int64).repeat(len(keys))
        lo, hi = (keys & _MASK32), ((keys >> 32) & _MASK32)
        lo, hi = lo.repeat_interleave(sample_count), hi.repeat_interleave(sample_count)
        self.row_key = _mix32(hi ^ _mix32(lo ^ _mix32(paths)))  # int64 [N] in [0, 2**32)
        self.draw = 0

    def __len__(self) -> int:
        return len(self.row_key)

    def uniforms(self, device: torch.device | str) -> Tensor:
        """float64 [N] in [0, 1): the next draw of every row."""
        k = self.row_key.to(device)
        step = torch.full_like(k, self.draw)
        self.draw += 1
        a = _mix32(k ^ _mix32(step))
        b = _mix32(a ^ 0x9E3779B9)
        return (a.double() * 2.0**21 + (b >> 11).double()) / 2.0**53  # 53 random bits


def _filtered(logits: Tensor, sampling: SamplingSettings) -> Tensor:
    """Logits [N, V] divided by T with top-k / top-p filtered tokens at -inf (float32)."""
    top_k, top_p = sampling.top_k, sampling.top_p
    scaled = logits.float() / sampling.T
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
    return scaled


def inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """Tokens int64 [N]: the first index whose cumulative probability exceeds ``u * total`` (probs [N, V], u [N])."""
    cdf = probs.double().cumsum(dim=-1)
    target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
    return torch.searchsorted(cdf, target, right=True)[:, 0].clamp_max(probs.shape[-1] - 1)


def sample_from_logits(logits: Tensor, sampling: SamplingSettings,
                       generator: torch.Generator | WindowDraws | None = None) -> Tensor:
    """Sample one token per row: logits [N, V] -> int64 [N], as ``sampling`` (validated) says.

    ``generator``: a ``torch.Generator`` made once per forecast by ``sampling.generator(device)`` (None:
    torch's global one), or :class:`WindowDraws` (per-window counter-based draws, N rows).
    Logits are divided by ``T``. If ``top_k > 0`` only the top_k logits are kept (``top_p`` is then
    ignored); else if ``top_p < 1`` tokens are kept, in descending order, while the probability of the
    tokens before them is at most top_p (the most likely token always stays). ``top_k == 1`` is
    greedy: the arg-max, with no randomness drawn.
    """
    if sampling.top_k == 1:
        return logits.argmax(dim=-1)
    probs = _filtered(logits, sampling).softmax(dim=-1)
    if isinstance(generator, WindowDraws):
        if len(generator) != probs.shape[0]:
            raise ValueError(f"WindowDraws holds {len(generator)} rows; the logits have {probs.shape[0]}")
        return inverse_cdf(probs, generator.uniforms(probs.device))
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
