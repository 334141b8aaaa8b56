"""A one-line forecast progress: windows done / total, rate and time left, readable in a log as in a terminal.

On a terminal the line is redrawn in place (carriage return, at most a few times a second); when stdout is
not a terminal (a log file, CI) a plain line is printed every ``every_percent`` % of the total, so ``tail`` of
a log shows how far a stage got without carriage-return frames.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressLine:
    """Counts windows and reports ``<label>: done/total windows (p %), r win/s, t left``.

    Args:
        total: windows expected; label: what is counted (e.g. ``backtest forecasts``).
        stream: where to write (default stdout); every_percent: the step between plain lines off a terminal.
        enabled: False writes nothing.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, every_percent: float = 5.0,
                 enabled: bool = True) -> None:
        self.total, self.label = max(int(total), 0), label
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.enabled = every_percent, enabled
        self.done, self.start = 0, time.perf_counter()
        self._next_percent, self._last_draw = every_percent, 0.0

    def text(self) -> str:
        """The current line."""
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = 100.0 * self.done / self.total if self.total else 100.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = _duration(left) if left == left else "?"
        return f"{self.label}: {self.done}/{self.total} windows ({share:.0f} %), {rate:.1f} win/s, {eta} left"

    def update(self, n: int) -> None:
        """``n`` more windows done."""
        self.done += int(n)
        if not self.enabled:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= 0.2 or self.done >= self.total:
                self.stream.write("\r" + self.text())
                self.stream.flush()
                self._last_draw = now
            return
        share = 100.0 * self.done / self.total if self.total else 100.0
        if share + 1e-9 >= self._next_percent:
            print(self.text(), file=self.stream, flush=True)
            while self._next_percent <= share + 1e-9:
                self._next_percent += self.every

    def close(self) -> None:
        """End the line (a newline on a terminal)."""
        if self.enabled and self.tty:
            self.stream.write("\r" + self.text() + "\n")
            self.stream.flush()
