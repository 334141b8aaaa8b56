"""Running forecasts off the event loop: a cap on how many run at once, and cancellation.

A forecast runs in a worker thread. It stops (``GenerationCancelled``, raised by the decoding loop at
its next step) when its client disconnects, when the server shuts down, or, while still waiting for a
free slot, as soon as either happens; so an abandoned request never holds up the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Callable, Iterator, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from kronos.inference.generation import GenerationCancelled

R = TypeVar("R")
DISCONNECT_POLL_S = 0.2
SLOT_POLL_S = 0.1


class ForecastSlots:
    """At most ``limit`` forecasts compute at once; the others wait (cancellably) in arrival order."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"at least one forecast must be allowed to run, got {limit}")
        self._semaphore = threading.Semaphore(limit)
        self._lock = threading.Lock()
        self.running = 0
        self.waiting = 0

    @contextlib.contextmanager
    def hold(self, cancelled: Callable[[], bool]) -> Iterator[None]:
        """Wait for a slot (raising GenerationCancelled if ``cancelled()`` turns True meanwhile), hold it inside."""
        with self._lock:
            self.waiting += 1
        try:
            while not self._semaphore.acquire(timeout=SLOT_POLL_S):
                if cancelled():
                    raise GenerationCancelled("forecast cancelled while waiting for a free slot")
        finally:
            with self._lock:
                self.waiting -= 1
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._semaphore.release()


async def run_cancellable(request: Request, shutdown: threading.Event, work: Callable[[Callable[[], bool]], R]) -> R:
    """Run ``work(cancelled)`` in the thread pool; ``cancelled()`` turns True when the client goes away or on shutdown.

    The result (or the work's exception, e.g. GenerationCancelled) is returned (raised) once the thread ends,
    so a cancelled forecast's slot is free again when this returns.
    """
    gone = threading.Event()

    def cancelled() -> bool:
        return gone.is_set() or shutdown.is_set()

    task = asyncio.ensure_future(run_in_threadpool(work, cancelled))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if not gone.is_set() and await request.is_disconnected():
                gone.set()
    finally:
        gone.set()  # the handler itself was cancelled, or returned: the thread need not go on
