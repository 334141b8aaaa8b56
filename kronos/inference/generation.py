"""Autoregressive token generation for Kronos, cached or uncached, both exact.

Layout: B series, each left-padded to the longest history L (``starts[b]`` = its padding columns),
S sample paths per series (rows ``b*S .. b*S+S-1``, N = B*S rows), H = pred_len steps.
At step i the reference runs the predictor over the last ``min(L_b + i, max_context)`` tokens.
Cached decoding computes the history once per series, copies it to the S paths, then appends one
column per step while the window has not started to slide. Once ``L + i > max_context`` every
position of the window shifts and loses its first key, so the window is recomputed (exact).

``rolling=True`` is an explicit approximation for long generations: once the window slides, the cache
becomes a ring buffer whose oldest column is overwritten by the new token. Rotary keys are stored
already rotated and attention scores depend only on relative positions, so positions simply keep
counting; what is approximate is that the kept keys/values were computed while the dropped tokens
were still visible. Results then differ from the reference (and from the exact modes).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor
from tqdm.auto import tqdm

from kronos.inference.token_sampling import sample_from_logits
from kronos.inference.settings import SamplingSettings
from kronos.models.kv_cache import KVCache
from kronos.models.layers import padded_causal_mask, padded_positions
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer


class GenerationCancelled(RuntimeError):
    """Generation stopped because the check installed with :func:`cancel_when` returned True."""


# A per-thread/task check polled once per decoding step (a web client that went away, a server shutting down).
_cancel_check: ContextVar[Callable[[], bool] | None] = ContextVar("kronos_generation_cancel", default=None)


@contextlib.contextmanager
def cancel_when(check: Callable[[], bool]) -> Iterator[None]:
    """Within this block, generation raises GenerationCancelled at the first step where ``check()`` is True."""
    token = _cancel_check.set(check)
    try:
        yield
    finally:
        _cancel_check.reset(token)


def window_inputs(starts: Tensor, window_start: int, width: int) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Rotary positions [R, W], causal mask [R, 1, W, W] and key mask [R, 1, 1, W] for a window.

    All three are None when no row has padding inside the window (plain causal attention, the
    reference's exact code path).
    """
    local = (starts - window_start).clamp_min(0)
    if not bool((local > 0).any()):
        return None, None, None
    key_mask = (torch.arange(width, device=starts.device)[None, :] >= local[:, None])[:, None, None]
    return padded_positions(local, width), padded_causal_mask(local, width), key_mask


def generate_tokens(
    model: Kronos,
    s1_hist: Tensor,
    s2_hist: Tensor,
    stamps: Tensor,
    starts: Tensor,
    pred_len: int,
    max_context: int,
    sampling: SamplingSettings,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress: bool = False,
    rolling: bool = False,
) -> tuple[Tensor, Tensor]:
    """Generate ``pred_len`` token pairs after each history.

    Each step: the hidden state of the last token (:class:`_Decoder`: a prefill, then one cached step at a time,
    or the whole window recomputed once it slides), then s1 and s2 drawn from it.

    Args:
        s1_hist, s2_hist: history tokens [B, L], left-padded.
        stamps: time stamps of history and future [B, L + H, 5].
        starts: padding columns per series, int64 [B].
        sampling: how tokens are drawn (``sample_count`` paths S per series); generator: its draws (None:
            torch's global generator).
        rolling: with ``use_cache``, keep decoding from a ring-buffer cache once the window slides
            (approximate, see the module docstring) instead of recomputing the window (exact).
    Returns:
        (s1, s2) int64 [B*S, L + H]: histories repeated S times, then the generated tokens.
    """
    L = s1_hist.shape[1]
    S = sampling.sample_count
    dec = _Decoder.start(model, s1_hist, s2_hist, stamps, starts, pred_len, max_context, S)
    cancelled = _cancel_check.get()

    for i in tqdm(range(pred_len), disable=not progress, desc="Kronos decoding", leave=False):
        if cancelled is not None and cancelled():
            raise GenerationCancelled(f"forecast cancelled after {i} of {pred_len} decoding steps")
        end = L + i
        # Step 0 depends only on the history: compute it once per series, then copy to the S paths.
        first = i == 0
        if use_cache and (end <= max_context or rolling):
            step = dec.prefill(s1_hist, s2_hist, stamps, starts, end) if first else dec.cached_step(end)
        else:
            history = (s1_hist, s2_hist, stamps, starts) if first else None
            step = dec.window_step(end, history)
        h, keys, values, key_mask = step
        h_last = h[:, -1:]
        if first and S > 1:
            h_last, keys, values, key_mask = dec.to_paths(S, h_last, keys, values, key_mask)
        s1 = sample_from_logits(model.s1_logits(h_last[:, 0]), sampling, generator)
        s2_logits = model.s2_logits_at(h_last, s1, keys, values, key_mask)
        s2 = sample_from_logits(s2_logits, sampling, generator)
        dec.s1_all[:, end] = s1
        dec.s2_all[:, end] = s2
    return dec.s1_all, dec.s2_all


Step = tuple[Tensor, Tensor, Tensor, "Tensor | None"]  # hidden [R, W, D], keys, values, key mask (None: no padding)


@dataclass
class _Decoder:
    """What one :func:`generate_tokens` call keeps between steps: the token buffers of the N = B*S paths
    (``s1_all``/``s2_all`` [N, L + H], ``stamps_n`` [N, L + H, 5], ``starts_n`` [N]) and the KV cache.

    ``base`` is the first token of the cached window (rolling may start past 0); ``ring_token`` [capacity] is the
    token index each cache column holds (rolling); ``padded``: the prefilled window had padding inside it.
    """

    model: Kronos
    s1_all: Tensor
    s2_all: Tensor
    stamps_n: Tensor
    starts_n: Tensor
    max_context: int
    capacity: int
    ring_token: Tensor
    cache: KVCache | None = None  # set by the prefill; dropped once the exact window slides
    padded: bool = False
    base: int = 0

    @classmethod
    def start(cls, model: Kronos, s1_hist: Tensor, s2_hist: Tensor, stamps: Tensor, starts: Tensor, pred_len: int,
              max_context: int, paths: int) -> "_Decoder":
        """Buffers holding each history repeated ``paths`` times, the future columns still zero."""
        B, L = s1_hist.shape
        device = s1_hist.device
        total = L + pred_len
        s1_all = torch.zeros(B * paths, total, dtype=torch.long, device=device)
        s2_all = torch.zeros_like(s1_all)
        s1_all[:, :L] = s1_hist.repeat_interleave(paths, 0)
        s2_all[:, :L] = s2_hist.repeat_interleave(paths, 0)
        capacity = min(total - 1, max_context)
        return cls(model, s1_all, s2_all, stamps.repeat_interleave(paths, 0), starts.repeat_interleave(paths, 0),
                   max_context, capacity, torch.arange(capacity, device=device))

    def prefill(self, s1_hist: Tensor, s2_hist: Tensor, stamps: Tensor, starts: Tensor, end: int) -> Step:
        """Step 0 from the cache's point of view: the history's window [B rows] computed once and cached."""
        self.cache = self.model.new_kv_cache(s1_hist.shape[0], self.capacity, s1_hist.device)
        # Exact mode only gets here with end <= max_context (base 0); rolling prefills the last window.
        self.base = base = end - min(end, self.capacity)
        self.ring_token += base
        positions, mask, key_mask = window_inputs(starts, base, end - base)
        h, keys, values = self.model.decode_step(s1_hist[:, base:end], s2_hist[:, base:end], stamps[:, base:end],
                                                 positions, mask, self.cache, 0)
        self.padded = key_mask is not None
        return h, keys, values, key_mask

    def cached_step(self, end: int) -> Step:
        """One new token per path against the cache (rolling: overwrite the oldest column, attend the whole ring)."""
        c, base, capacity = end - 1, self.base, self.capacity
        positions = (c - self.starts_n.clamp_min(base))[:, None]  # as in the prefilled window
        if c - base < capacity:
            col, kv_len = c - base, None
        else:
            col, kv_len = (c - base) % capacity, capacity
            self.ring_token[col] = c
        used = self.ring_token[: col + 1] if kv_len is None else self.ring_token
        key_mask = (used[None, :] >= self.starts_n[:, None])[:, None, None] if self.padded else None
        h, keys, values = self.model.decode_step(self.s1_all[:, c:end], self.s2_all[:, c:end],
                                                 self.stamps_n[:, c:end], positions, key_mask, self.cache, col, kv_len)
        return h, keys, values, key_mask

    def window_step(self, end: int, history: tuple[Tensor, Tensor, Tensor, Tensor] | None) -> Step:
        """The last ``max_context`` tokens recomputed without a cache (``history``: the B-row inputs of step 0)."""
        self.cache = None  # the window slid: cached columns no longer match any position
        tok1, tok2, st, rows_starts = history or (self.s1_all, self.s2_all, self.stamps_n, self.starts_n)
        width = min(end, self.max_context)
        ws = end - width
        positions, mask, key_mask = window_inputs(rows_starts, ws, width)
        h, keys, values = self.model.decode_step(tok1[:, ws:end], tok2[:, ws:end], st[:, ws:end], positions, mask)
        return h, keys, values, key_mask

    def to_paths(self, paths: int, h_last: Tensor, keys: Tensor, values: Tensor,
                 key_mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Step 0's B-row results (and the cache) repeated for the ``paths`` paths of each series."""
        h_last, keys, values = (t.repeat_interleave(paths, 0) for t in (h_last, keys, values))
        key_mask = None if key_mask is None else key_mask.repeat_interleave(paths, 0)
        if self.cache is not None:
            self.cache.repeat_rows(paths)
        return h_last, keys, values, key_mask


def decode_forecast(
    tokenizer: KronosTokenizer, s1: Tensor, s2: Tensor, starts: Tensor, pred_len: int, max_context: int
) -> Tensor:
    """Decode the last ``min(L_b + H, max_context)`` tokens of each row and keep the final H rows.

    s1, s2 [N, L + H]; starts [N] padding columns -> normalised forecasts [N, H, d_in].
    """
    total = s1.shape[1]
    width = min(total, max_context)
    ws = total - width
    positions, mask, _ = window_inputs(starts, ws, width)
    return tokenizer.decode_ids(s1[:, ws:], s2[:, ws:], positions, mask)[:, -pred_len:]
