"""A bounded, thread-safe map of recent results (datasets, forecasts) keyed by random ids."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import Generic, TypeVar

from kronos.data.errors import quoted
from kronos.errors import KronosUserError

T = TypeVar("T")


class UnknownItemError(KronosUserError, LookupError):
    """An id the store does not hold (never issued, or dropped as least recently used)."""


class RecentStore(Generic[T]):
    """Keeps the ``max_entries`` most recently used items; older ones are dropped, not swapped to disk."""

    def __init__(self, what: str, max_entries: int) -> None:
        self._what = what
        self._max_entries = max_entries
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, item: T) -> str:
        """Store ``item`` and return its new id."""
        item_id = uuid.uuid4().hex
        with self._lock:
            self._items[item_id] = item
            while len(self._items) > self._max_entries:
                self._items.popitem(last=False)
        return item_id

    def get(self, item_id: str) -> T:
        """The item with this id; UnknownItemError saying what to do when it is unknown or was dropped."""
        with self._lock:
            if item_id not in self._items:
                raise UnknownItemError(f"{self._what} {quoted(item_id)} is no longer held by the server (restarted or expired): load it again")
            self._items.move_to_end(item_id)
            return self._items[item_id]
