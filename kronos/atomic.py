"""Crash-safe writes: build a file or directory under a temporary name, then rename it into place.

A run killed half-way leaves the previous export/report/provider intact (or nothing), never a
half-written one. This is the project's ONE atomic-write helper: exports, reports, Qlib providers,
cleaned CSVs and CLI outputs all go through it.

Permissions: ``tempfile.mkstemp``/``mkdtemp`` create 0600/0700 entries, which would make every
output private to its writer whatever the user's umask says. What lands here gets the mode an
ordinary ``open()``/``mkdir()`` would give (0666/0777 less the umask); a file that replaces an
existing one keeps that file's mode (a user who made it group-readable keeps it so).
A symlink at the target is written *through*: its target file is replaced, the link stays.

Leftovers: temporary names carry their writer's host and process id (``.<name>.tmp-<host>-<pid>-...``). A
process killed with SIGKILL cannot remove its temporary; the next write of the same target removes every
leftover of that target whose writer (same host) is no longer running, so none accumulate.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from kronos.jsonio import dumps_strict
from kronos.errors import KronosUserError

_DEFAULT_FILE_MODE = 0o666
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-")
# Temporaries of earlier versions carry no writer (``.<name>.tmp-<8 random>``, ``.<name>.<8 random>.tmp``):
# removed once older than LEGACY_AGE_S, when no writer can still be at work on them.
_LEGACY = re.compile(r"^\.(?P<name>.+?)\.(?:(?:tmp|old)-[a-z0-9_]{8}|[a-z0-9_]{8}\.tmp)$")
LEGACY_AGE_S = 24 * 3600
_DEFAULT_DIR_MODE = 0o777


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    # Elsewhere the only way to read it is to set it; restore it at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class WriteTargetError(KronosUserError, ValueError):
    """A path a file or directory is to be written to, but that must not be replaced (a pipe, a device...)."""


def _kind(mode: int) -> str:
    """A file type in words, for messages."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def check_write_target(path: str | os.PathLike, what: str = "output", *, directory: bool = False) -> Path:
    """Refuse, before any work, a target that exists and is not what will replace it; return the final path.

    ``directory=False``: the target must be absent or a regular file (through symlinks); a named pipe, a
    device node, a socket or a directory is never replaced by a written file. ``directory=True``: it must be
    absent or a directory. ``what`` names the option or key in the message (e.g. ``--out``).

    Raises:
        WriteTargetError: one line naming ``what``, the path and what it is.
    """
    final = _final_path(path)
    try:
        mode = os.stat(final).st_mode
    except FileNotFoundError:
        return final
    except OSError as err:
        raise WriteTargetError(f"{what} {path}: cannot be written ({err.strerror or err})") from None
    if directory and not stat.S_ISDIR(mode):
        raise WriteTargetError(f"{what} {path} exists and is {_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, "
                               f"not a directory: name a new or existing directory")
    if not directory and not stat.S_ISREG(mode):
        raise WriteTargetError(f"{what} {path} is {_kind(mode)}, not a regular file: it is never replaced; "
                               f"name a new or existing regular file")
    return final


def same_target(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when two output paths name the same file (through symlinks, ``..`` and relative spellings)."""
    fa, fb = Path(os.path.realpath(Path(a).expanduser())), Path(os.path.realpath(Path(b).expanduser()))
    if fa == fb:
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(fa, fb)
    return False


def _owner() -> str:
    """``<host>-<pid>``: the writer's tag in temporary names (what :func:`remove_stale_leftovers` reads)."""
    return f"{_HOST}-{os.getpid()}"


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one owned by another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(entry: Path, name: str) -> bool:
    """Whether ``entry`` is a temporary of target ``name`` whose writer is gone (see the module docstring)."""
    match = _LEFTOVER.match(entry.name)
    if match:
        return match["name"] == name and match["host"] == _HOST and not _running(int(match["pid"]))
    legacy = _LEGACY.match(entry.name)
    if not legacy or legacy["name"] != name:
        return False
    try:
        return time.time() - entry.lstat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False


def remove_stale_leftovers(target: Path) -> list[Path]:
    """Remove the temporaries of ``target`` (beside it) left by writers of this host that are no longer running.

    Returns:
        The paths removed (a live writer's temporaries, and other hosts', are never touched).
    """
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            if not _stale(entry, target.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _final_path(path: str | os.PathLike) -> Path:
    """``path`` with symlinks resolved, so a link's target is replaced rather than the link."""
    path = Path(path).expanduser()
    return Path(os.path.realpath(path)) if path.is_symlink() else path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it is renamed onto ``path``.

    Write the content to the yielded path by any means (``df.to_csv(tmp)``, ``fig.savefig(tmp)``,
    a pyarrow writer). On an exception the temporary file is removed and ``path`` is untouched.
    """
    final = check_write_target(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-{_owner()}-", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            mode = stat.S_IMODE(final.stat().st_mode)
        except FileNotFoundError:
            mode = _DEFAULT_FILE_MODE & ~current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Yield an open file (``mode`` "w" or "wb") whose content replaces ``path`` on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    with atomic_file(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    with atomic_file(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON of ``obj`` (indent 2; NaN/inf as null, other values via ``str``) written to ``path`` atomically."""
    return atomic_write_text(path, dumps_strict(obj) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``target``; on success it replaces ``target``.

    On an exception the temporary directory is removed and ``target`` is left as it was. The
    new directory gets the umask's mode (not mkdtemp's 0700); a symlink at ``target`` is kept and
    its target directory replaced. Callers decide whether replacing
    an existing ``target`` is allowed; this only guarantees the swap never loses both copies.
    """
    target = check_write_target(target, directory=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{_owner()}-", dir=target.parent))
    os.chmod(tmp, _DEFAULT_DIR_MODE & ~current_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        # rename(2) cannot replace a non-empty directory: move the old one aside first, and put it
        # back if the new one cannot take its place.
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{_owner()}-", dir=target.parent))
        os.rmdir(old)
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
