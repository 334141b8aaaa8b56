"""Running forecasts off the event loop: a cap on how many compute at once, and cancellation.

A forecast is checked first (fast, in a worker thread), then waits for a slot on the event loop (no
thread is held while waiting), then computes in a worker thread. It stops (``GenerationCancelled``,
raised by the decoding loop at its next step, or by the wait) when its client disconnects or the
server shuts down, so an abandoned request never holds up the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from starlette.requests import Request

from kronos.inference.generation import GenerationCancelled

R = TypeVar("R")
Cancelled = Callable[[], bool]
DISCONNECT_POLL_S = 0.2
SLOT_POLL_S = 0.1
SHUTDOWN_GRACE_S = 1.0  # on shutdown, a job that has not stopped by then is abandoned with a 503


class ForecastSlots:
    """At most ``limit`` forecasts compute at once; the others wait their turn, in arrival order, cancellably.

    Used from the event loop only (no locks needed: nothing awaits between a check and its update); it
    polls instead of holding an asyncio primitive, so it is not tied to one event loop.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"at least one forecast must be allowed to run, got {limit}")
        self.limit = limit
        self.running = 0
        self._queue: deque[object] = deque()

    @property
    def waiting(self) -> int:
        """Forecasts waiting for a slot."""
        return len(self._queue)

    @contextlib.asynccontextmanager
    async def hold(self, cancelled: Cancelled) -> AsyncIterator[None]:
        """Wait for a slot (raising GenerationCancelled once ``cancelled()`` is True), hold it inside."""
        ticket = object()
        self._queue.append(ticket)
        try:
            while not (self.running < self.limit and self._queue[0] is ticket):
                if cancelled():
                    raise GenerationCancelled("forecast cancelled while waiting for a free slot")
                await asyncio.sleep(SLOT_POLL_S)
        finally:
            self._queue.remove(ticket)
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


async def run_cancellable(request: Request, shutdown: threading.Event, job: Callable[[Cancelled], Awaitable[R]]) -> R:
    """Run ``job(cancelled)``; ``cancelled()`` turns True when the client goes away or the server shuts down.

    Returns (raises) the job's result (exception, e.g. GenerationCancelled) once it has ended, so a
    cancelled forecast's thread and slot are free again when this returns. On server shutdown a job still
    running after SHUTDOWN_GRACE_S (work between decoding steps, e.g. reading a file) is cancelled and
    GenerationCancelled raised at once: the client gets a clean 503, not a 500 when uvicorn's own
    shutdown timeout kills the request.
    """
    gone = threading.Event()

    def cancelled() -> bool:
        return gone.is_set() or shutdown.is_set()

    task = asyncio.ensure_future(job(cancelled))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if shutdown.is_set():
                done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE_S)
                if done:
                    return task.result()
                task.cancel()  # frees its slot; its worker thread ends at its next cancellation check
                raise GenerationCancelled("the server is shutting down: send the request again once it is back")
            if not gone.is_set() and await request.is_disconnected():
                gone.set()
    finally:
        gone.set()  # the handler itself was cancelled, or returned: the work need not go on
