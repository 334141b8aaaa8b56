"""Preallocated key/value cache for exact incremental decoding with the Kronos predictor.

The model owns its cache: ``Kronos.new_kv_cache(batch, capacity)`` sizes one from the model's own config,
``Kronos.decode_step(..., cache=...)`` reads and writes it. Decoding code never touches model internals.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kronos.models.layers import KVBuffers


class KVCache:
    """Keys/values of every self-attention layer and of the dependency layer, column by column.

    Columns are window positions; a column is written once (prefill, or one new token per step) and
    stays valid while the window keeps its first token. Buffers are allocated once at ``capacity``
    so a step writes one column instead of re-concatenating the whole cache.
    Self-attention buffers: ``layers[i]`` = (keys, values) [B, n_heads, capacity, d_model / n_heads] (rotary
    applied); dependency-layer buffers: ``dep`` [B, dep_heads, capacity, d_model / dep_heads] (no rotary).
    """

    def __init__(self, layers: list[KVBuffers], dep: KVBuffers) -> None:
        self.layers = layers
        self.dep = dep

    @classmethod
    def allocate(cls, *, n_layers: int, n_heads: int, dep_heads: int, d_model: int, batch: int, capacity: int,
                 device: torch.device | str, dtype: torch.dtype) -> "KVCache":
        """Empty buffers for ``batch`` rows and ``capacity`` columns."""

        def pair(heads: int) -> KVBuffers:
            shape = (batch, heads, capacity, d_model // heads)
            return torch.empty(shape, device=device, dtype=dtype), torch.empty(shape, device=device, dtype=dtype)

        return cls([pair(n_heads) for _ in range(n_layers)], pair(dep_heads))

    def write_dep(self, keys: Tensor, values: Tensor, start: int, kv_len: int | None = None) -> KVBuffers:
        """Store dependency-layer keys/values [B, dep_heads, T, hd] at columns start..start+T; return columns
        0..kv_len (default start+T)."""
        end = start + keys.shape[2]
        self.dep[0][:, :, start:end].copy_(keys)
        self.dep[1][:, :, start:end].copy_(values)
        keep = end if kv_len is None else kv_len
        return self.dep[0][:, :, :keep], self.dep[1][:, :, :keep]

    def repeat_rows(self, repeats: int) -> None:
        """Give each row ``repeats`` consecutive copies (history encoded once, shared by sample paths)."""
        self.layers = [(k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)) for k, v in self.layers]
        self.dep = (self.dep[0].repeat_interleave(repeats, 0), self.dep[1].repeat_interleave(repeats, 0))
