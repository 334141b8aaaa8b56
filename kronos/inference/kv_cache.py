"""Preallocated key/value cache for exact incremental decoding with the Kronos predictor."""

from __future__ import annotations

import torch
from torch import Tensor

from kronos.models.layers import KVBuffers
from kronos.models.predictor import DEP_LAYER_HEADS, Kronos


class KVCache:
    """Keys/values of every self-attention layer and of the dependency layer, column by column.

    Columns are window positions; a column is written once (prefill, or one new token per step) and
    stays valid while the window keeps its first token. Buffers are allocated once at ``capacity``
    so a step writes one column instead of re-concatenating the whole cache.
    Self-attention buffers: [B, n_heads, capacity, d_model / n_heads] (rotary applied);
    dependency-layer buffers: [B, 4, capacity, d_model / 4] (no rotary).
    """

    def __init__(self) -> None:
        self.layers: list[KVBuffers] = []
        self.dep: KVBuffers | None = None

    def set(self, model: Kronos, batch: int, capacity: int, device: torch.device, dtype: torch.dtype) -> None:
        """Allocate empty buffers for ``batch`` rows and ``capacity`` columns."""

        def pair(heads: int) -> KVBuffers:
            shape = (batch, heads, capacity, model.d_model // heads)
            return torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype)

        self.layers = [pair(model.n_heads) for _ in range(model.n_layers)]
        self.dep = pair(DEP_LAYER_HEADS)

    def clear(self) -> None:
        """Release the buffers."""
        self.layers, self.dep = [], None

    @property
    def is_set(self) -> bool:
        return self.dep is not None

    def write_dep(self, keys: Tensor, values: Tensor, start: int, kv_len: int | None = None) -> KVBuffers:
        """Store dependency-layer keys/values [B, 4, T, hd] at columns start..start+T; return columns
        0..kv_len (default start+T)."""
        if self.dep is None:
            raise RuntimeError("KVCache.set() must be called before writing to the cache")
        end = start + keys.shape[2]
        self.dep[0][:, :, start:end].copy_(keys)
        self.dep[1][:, :, start:end].copy_(values)
        keep = end if kv_len is None else kv_len
        return self.dep[0][:, :, :keep], self.dep[1][:, :, :keep]

    def repeat_rows(self, repeats: int) -> None:
        """Give each row ``repeats`` consecutive copies (history encoded once, shared by sample paths)."""
        self.layers = [(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in self.layers]
        if self.dep is not None:
            self.dep = (self.dep[0].repeat_interleave(repeats, 0), self.dep[1].repeat_interleave(repeats, 0))
