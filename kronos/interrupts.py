"""Interrupts (SIGINT, SIGTERM) and a full disk end a run in one line and a non-zero status.

A run stopped this way keeps what was already complete (every output is written aside and renamed into
place by :mod:`kronos.atomic`, whose temporaries are removed as the exception unwinds) and never prints
a traceback: the user asked for the stop, or the disk is full, neither is a bug.

``with stop_cleanly():`` around a front end's work turns SIGTERM into an exception (by default it kills
the process at once, leaving temporaries behind), and a KeyboardInterrupt or a disk-full ``OSError``
into ``error: ...`` on stderr and ``SystemExit`` (130 for SIGINT, 143 for SIGTERM, 2 for a full disk).
"""

from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading
from typing import Any, Iterator

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal; ``args[0]`` is its name (``SIGTERM``)."""


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def stop_message(err: BaseException, doing: str = "the run") -> tuple[str, int] | None:
    """(one line, exit status) for an interrupt or a full disk; None for anything else (a bug keeps its traceback).

    Args:
        err: the exception that ended ``doing``.
        doing: what was running, in words (e.g. ``the evaluate stage``).
    """
    if isinstance(err, KeyboardInterrupt):
        name = err.args[0] if isinstance(err, Interrupted) and err.args else "SIGINT"
        return (f"interrupted ({name}) during {doing}: outputs already complete are kept, the one being written "
                "was discarded; run the same command again to redo it", EXIT_CODES.get(name, 130))
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        where = f" writing {err.filename}" if err.filename else ""
        return (f"the disk is full{where} ({err.strerror or err}) during {doing}: nothing half-written was kept; "
                "free some space (or set output_root elsewhere) and run the command again", 2)
    return None


@contextlib.contextmanager
def stop_cleanly(doing: str = "the run") -> Iterator[None]:
    """Run the body with SIGTERM raising :class:`Interrupted`; end an interrupt or a full disk in one line.

    Raises:
        SystemExit: with :func:`stop_message`'s status after printing ``error: <line>`` to stderr.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    except (KeyboardInterrupt, OSError) as err:
        stop = stop_message(err, doing)
        if stop is None:
            raise
        print(f"error: {stop[0]}", file=sys.stderr)
        raise SystemExit(stop[1]) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
