"""Ending a finished command without the interpreter's teardown.

With torch, Lightning (and torch._dynamo, sympy, torchmetrics through it) and Qlib imported, Python's own
shutdown, which finalises every imported module one by one, takes about a second on a 2-core CPU after the
command's work is done, long enough to matter when a re-run backtest on stored forecasts takes a few seconds.
:func:`exit_now` does what that shutdown does that anyone can see (the ``atexit`` handlers: logging's flush,
loggers' and libraries' own clean-up; the standard streams flushed) and then ends the process at once.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def distributed() -> bool:
    """Whether this process is one rank of several (torchrun / a DDP launcher set ``WORLD_SIZE`` above 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def exit_now(code: int) -> NoReturn:
    """Run the ``atexit`` handlers, flush stdout and stderr, and end the process with ``code``.

    Only for a command's console entry once its work is done (never in a library call: the caller's process
    ends here). A rank of a distributed run exits the ordinary way (``sys.exit``), so the collective
    library's own shutdown runs as it expects.
    """
    if distributed():
        sys.exit(code)
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is not None:
        run_handlers()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)
