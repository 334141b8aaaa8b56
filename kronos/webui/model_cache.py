"""Loaded predictors kept between requests, so a model chosen once is not reloaded per forecast."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from kronos.inference.predictor import KronosPredictor

CacheKey = tuple[str, str, str | None, int]
Loader = Callable[[str, str, str | None, int], KronosPredictor]


class ModelCache:
    """A small LRU of ``KronosPredictor`` objects keyed by (predictor, tokenizer, device, max_context).

    Forecasts share a cached predictor without a per-model lock: generation keeps its state (KV cache,
    sampled tokens) in local tensors and the weights are only read, so requests to the same model run
    side by side and none waits behind another (the app caps how many run at once).
    """

    def __init__(self, loader: Loader, max_entries: int = 3) -> None:
        self._loader = loader
        self._max_entries = max_entries
        self._entries: OrderedDict[CacheKey, KronosPredictor] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, predictor: str, tokenizer: str, device: str | None, max_context: int) -> KronosPredictor:
        """The cached predictor for this key, loading it (once, even under concurrent requests) when absent."""
        key = (predictor, tokenizer, device, max_context)
        # Loading under the guard serialises loads; models are large, so two parallel loads would only thrash.
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            entry = self._loader(predictor, tokenizer, device, max_context)
            self._entries[key] = entry
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return entry

    def loaded(self) -> list[CacheKey]:
        """Keys of the models in memory, least recently used first."""
        with self._guard:
            return list(self._entries)
