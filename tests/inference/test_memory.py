"""kronos.inference.memory: freed heap memory goes back to the OS between forecast batches (issue 20)."""

from __future__ import annotations

import ctypes.util
import sys
from pathlib import Path

import pytest

from kronos.inference.memory import release_freed_memory


def _rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def _glibc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "malloc_trim")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="malloc_trim is glibc's (Linux)")
def test_freed_heap_blocks_are_returned() -> None:
    """Blocks freed below a live one stay resident until the trim (what made the backtest grow)."""
    blocks = [bytearray(4096) for _ in range(40_000)]  # ~160 MB of heap (below the mmap threshold)
    pin = bytearray(4096)  # a live block above them: the heap cannot simply shrink
    for b in blocks:
        b[::512] = b"\x01" * len(b[::512])  # touch every page
    del blocks
    before = _rss_anon_mb()
    assert release_freed_memory() is True
    after = _rss_anon_mb()
    assert before - after > 100, (before, after)
    del pin


def test_no_trim_elsewhere_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    from kronos.inference import memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_freed_memory() is False
