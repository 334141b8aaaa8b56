"""One run per experiment directory at a time: an advisory lock held for the whole command.

Two runs of the same experiment would interleave their logs (the CSV logger's metrics file), checkpoints
and exports. ``hold_experiment(root)`` takes ``<root>/.run.lock`` with ``flock``: a second run is refused
at once with one line naming the directory and the holder's pid. The kernel drops the lock when the
holding process dies (a killed node, ``kill -9``), so a lock never outlives its run and a relaunch with
``ckpt_path=last`` is never blocked by a stale file. Only one process of a distributed run (global rank
zero) takes it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from kronos.errors import KronosUserError

LOCK_NAME = ".run.lock"


class ExperimentDirError(KronosUserError, RuntimeError):
    """The experiment directory is in use by another run, or cannot be written."""


def _unwritable(root: Path, err: OSError) -> ExperimentDirError:
    return ExperimentDirError(
        f"cannot write the experiment directory {root} ({err.strerror or err}): make output_root writable, "
        f"or pass output_root=<a writable directory>"
    )


@contextlib.contextmanager
def hold_experiment(root: str | os.PathLike, *, enabled: bool = True) -> Iterator[None]:
    """Hold the experiment's run lock inside the block (a no-op when not ``enabled``, e.g. rank > 0).

    Raises:
        ExperimentDirError: another live process holds the lock, or ``root`` cannot be created or written.
    """
    if not enabled:
        yield
        return
    import fcntl

    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ExperimentDirError(f"the experiment directory {root} exists and is not a directory: pass another "
                                 f"name=... or output_root=...")
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise _unwritable(root, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _unwritable(root, err) from None
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ExperimentDirError(
                f"experiment directory {root} is in use by another run (pid {holder}): wait for it to finish, or "
                f"pass another name=... (sweeps: each job has its own directory)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the lock
