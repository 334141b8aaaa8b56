"""The memory-mapped window store: a source streamed once into flat files, opened read-only by every process.

Layout of one store, ``<dir>/<key>/`` where ``key`` is a fingerprint of the inputs (the source's
class and settings, plus path, size and modification time of every input file)::

    meta.json      instruments, groups (mixture components), row count, the inputs it was built from
    values.f32     float32 [N, 6] raw rows in FEATURES order, series after series
    times.i64      int64 [N] timestamps (ns)
    stamps.u8      uint8 [N, 5] calendar fields (minute, hour, weekday, day, month)
    member.bool    bool [N] universe membership (only when the source has membership)
    offsets.i64    int64 [I + 1] first row of each series
    calendar.i64   int64 [sum D_g] each group's calendar (sorted union of its timestamps), back to back

Window settings (lookback, horizon, features, clip, splits) do not change these files: they only
shape the window index, a few integers per series computed when the store is opened
(:meth:`WindowStore.runs`), so changing them never rebuilds the store; changing an input file
or the source's settings gives a new key and so a new store.

Building streams the source's ``iter_series()`` (:class:`kronos.data.source.Source`): one series in memory at a
time, appended to the files with buffered writes (page cache, not process memory). It is
written under a temporary name and renamed into place, and guarded by an exclusive lock file, so
of several processes started together (DDP ranks of a node) one builds while the others wait
on the lock, then all open the same files read-only with ``np.memmap``: the operating system
shares their pages, so memory does not grow with the data or the number of processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES, time_features
from kronos.data.source import Source
from kronos.data.windows import SeriesGroup, WindowStore

STORE_VERSION = 1
META = "meta.json"
# file name -> (dtype, trailing shape)
_FILES: dict[str, tuple[str, tuple[int, ...]]] = {
    "values.f32": ("float32", (len(FEATURES),)),
    "times.i64": ("int64", ()),
    "stamps.u8": ("uint8", (5,)),
    "member.bool": ("bool", ()),
}


def _files_of(path: Path) -> list[list[Any]]:
    """[path, size, mtime_ns] of a file, or of every file below a directory (sorted)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def describe_inputs(value: Any, depth: int = 0) -> Any:
    """A JSON-able description of a source (or setting) that changes when its inputs change."""
    if depth > 6:
        return repr(value)
    if hasattr(value, "fingerprint") and callable(value.fingerprint):
        return value.fingerprint()
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, (str, Path)):
        text = str(value)
        path = Path(text).expanduser()
        if isinstance(value, Path) or ("/" in text or text.endswith((".csv", ".parquet"))):
            return {"path": text, "files": _files_of(path) if path.exists() else None}
        return text
    if isinstance(value, Mapping):
        return {str(k): describe_inputs(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [describe_inputs(v, depth + 1) for v in value]
    if hasattr(value, "__dict__"):
        cls = type(value)
        params = {k: v for k, v in vars(value).items() if not k.startswith("_")}
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "params": describe_inputs(params, depth + 1)}
    return repr(value)


def fingerprint(source: Any) -> tuple[str, dict[str, Any]]:
    """(key, inputs): the store key (hex) and the description of the inputs it hashes."""
    inputs = {"store_version": STORE_VERSION, "source": describe_inputs(source)}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return key, inputs


class _StoreWriter:
    """Appends validated series to the store's files (one series in memory at a time)."""

    def __init__(self, directory: Path, origin: str) -> None:
        self.dir, self.origin = directory, origin
        self.handles: dict[str, IO[bytes]] = {
            name: open(directory / name, "wb") for name in _FILES if name != "member.bool"
        }
        self.member: IO[bytes] | None = None
        self.rows = 0
        self.offsets = [0]
        self.instruments: list[str] = []
        self.seen: set[str] = set()

    def _member_file(self) -> IO[bytes]:
        """Open member.bool on the first series with membership; earlier series were members throughout."""
        if self.member is None:
            self.member = open(self.dir / "member.bool", "wb")
            for lo in range(0, self.rows, 1 << 24):
                self.member.write(np.ones(min(1 << 24, self.rows - lo), bool).tobytes())
        return self.member

    def add(self, symbol: str, timestamps: np.ndarray, values: np.ndarray, member: np.ndarray | None) -> None:
        """Validate and append one series (timestamps [T], values [T, 6], member [T] or None)."""
        where = f"{self.origin}: series '{symbol}'"
        if symbol in self.seen:
            raise DataValidationError(
                f"{where} appears again after other symbols: the input must be sorted by symbol, then time, "
                "so that each symbol's rows are contiguous. Sort the data (e.g. by symbol and timestamps) first."
            )
        self.seen.add(symbol)
        times = np.asarray(timestamps).astype("datetime64[ns]").astype(np.int64)
        vals = np.asarray(values, dtype=np.float32)
        if vals.ndim != 2 or vals.shape != (len(times), len(FEATURES)):
            raise DataValidationError(
                f"{where}: values have shape {vals.shape}, expected ({len(times)}, {len(FEATURES)})."
            )
        if len(times) == 0:
            return
        bad = np.flatnonzero(np.diff(times) <= 0)
        if len(bad):
            k = int(bad[0])
            raise DataValidationError(
                f"{where}: row {k + 1} of the series ({pd.Timestamp(int(times[k + 1]))}) is not after row {k} "
                f"({pd.Timestamp(int(times[k]))}): the input must be sorted by symbol, then time, without "
                "duplicate timestamps. Sort and de-duplicate it first."
            )
        finite = np.isfinite(vals)
        if not finite.all():
            r, c = (int(v[0]) for v in np.nonzero(~finite))
            raise DataValidationError(
                f"{where}: column '{FEATURES[c]}' is not a finite number at row {r} of the series "
                f"({pd.Timestamp(int(times[r]))}). Drop or fill such rows first."
            )
        self.handles["values.f32"].write(np.ascontiguousarray(vals).tobytes())
        self.handles["times.i64"].write(times.tobytes())
        self.handles["stamps.u8"].write(time_features(times.view("datetime64[ns]")).astype(np.uint8).tobytes())
        if member is not None:
            self._member_file().write(np.asarray(member, dtype=bool).tobytes())
        elif self.member is not None:
            self.member.write(np.ones(len(times), bool).tobytes())
        self.rows += len(times)
        self.offsets.append(self.rows)
        self.instruments.append(symbol)

    def close(self) -> None:
        for f in [*self.handles.values(), *([self.member] if self.member else [])]:
            f.close()


def build_store(source: Source, directory: str | Path, inputs: Mapping[str, Any] | None = None) -> Path:
    """Stream ``source`` into a new store at ``directory`` (which must not exist).

    Raises:
        DataValidationError: a series out of time order, a symbol in two blocks (input not sorted by
            symbol then time), a non-finite value, or no rows at all.
    """
    directory = Path(directory)
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    parts = source.parts()
    origin = source.origin
    writer = _StoreWriter(directory, origin)
    groups, calendars, cal_len = [], [], 0
    try:
        for name, part, weight in parts:
            first = len(writer.instruments)
            calendar = np.zeros(0, np.int64)
            series = part.iter_series()
            if len(parts) == 1:
                origin = writer.origin = part.origin
            for symbol, ts, vals, member in series:
                writer.add(str(symbol) if name is None else f"{name}:{symbol}", ts, vals, member)
                t = np.asarray(ts).astype("datetime64[ns]").astype(np.int64)
                if not (len(t) == len(calendar) and np.array_equal(t, calendar)):
                    calendar = np.union1d(calendar, t)
            calendars.append(calendar)
            groups.append({"name": name if name is not None else str(origin), "start": first,
                           "stop": len(writer.instruments), "weight": float(weight),
                           "calendar": [cal_len, cal_len + len(calendar)]})
            cal_len += len(calendar)
    finally:
        writer.close()
    if writer.rows == 0:
        raise DataValidationError(f"{origin}: the data source returned no rows.")
    np.asarray(writer.offsets, np.int64).tofile(directory / "offsets.i64")
    np.concatenate(calendars).astype(np.int64).tofile(directory / "calendar.i64")
    meta = {
        "version": STORE_VERSION,
        "origin": str(origin),
        "rows": writer.rows,
        "instruments": writer.instruments,
        "features": list(FEATURES),
        "has_member": writer.member is not None,
        "groups": groups,
        "build_seconds": round(time.perf_counter() - t0, 3),
        "inputs": dict(inputs or {}),
    }
    (directory / META).write_text(json.dumps(meta, indent=1))
    return directory


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (released when the process ends, even by a crash)."""
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_store(source: Source, root: str | Path) -> Path:
    """The store of ``source`` under ``root``: opened if built, else built once.

    The first process to take ``<root>/<key>.lock`` builds into ``<root>/.<key>.tmp-<pid>`` and
    renames it to ``<root>/<key>``; processes waiting on the lock then find it built. A build that
    fails removes its temporary directory; a killed one can leave it behind (``.<key>.tmp-<pid>``),
    but never a half-written ``<root>/<key>``: the next builder removes such leftovers (only the lock
    holder builds, so under the lock no other ``.<key>.tmp-*`` is in use). The lock is ``flock``'s, which
    the kernel drops when its holder dies, so a build killed mid-way never blocks the next run.
    Stores of earlier inputs are kept (delete them by hand).
    """
    root = Path(root)
    key, inputs = fingerprint(source)
    final = root / key
    if (final / META).is_file():
        return final
    with contextlib.ExitStack() as stack:
        try:
            root.mkdir(parents=True, exist_ok=True)
            stack.enter_context(_locked(root / f"{key}.lock"))
        except OSError as err:  # a read-only or full disk, a file where the directory should be
            raise DataValidationError(f"store directory {root} cannot be written ({err.strerror or err}): point "
                                      f"data.store.dir at a writable directory") from None
        if (final / META).is_file():  # another process built it while we waited
            return final
        for stale in root.glob(f".{key}.tmp-*"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{key}.tmp-{os.getpid()}"
        try:
            build_store(source, tmp, inputs)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _corrupt(path: Path, what: str) -> DataValidationError:
    return DataValidationError(f"store {path} is damaged ({what}): delete that directory and run again to rebuild it")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The store's meta.json, its fields checked (a corrupt manifest is one message naming the store)."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _corrupt(path, f"{META} unreadable: {' '.join(str(err).split())[:120]}") from None
    required = {"version": int, "origin": str, "rows": int, "instruments": list, "features": list,
                "has_member": bool, "groups": list}
    if not isinstance(meta, dict):
        raise _corrupt(path, f"{META} is not a JSON object")
    for key, kind in required.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool) is not (kind is bool):
            raise _corrupt(path, f"{META} field {key!r} is missing or not a {kind.__name__}")
    for g in meta["groups"]:
        if not (isinstance(g, dict) and {"name", "start", "stop", "weight", "calendar"} <= g.keys()):
            raise _corrupt(path, f"{META} field 'groups' holds a malformed entry")
    return meta


def _check_files(path: Path, meta: Mapping[str, Any]) -> None:
    """Every data file has the size ``meta.json`` implies (a truncated file is refused, not mapped)."""
    n, instruments = int(meta["rows"]), len(meta["instruments"])
    cal_len = max((int(g["calendar"][1]) for g in meta["groups"]), default=0)
    expected = {name: n * np.dtype(dtype).itemsize * int(np.prod(tail)) for name, (dtype, tail) in _FILES.items()
                if name != "member.bool" or meta["has_member"]}
    expected["offsets.i64"] = (instruments + 1) * 8
    expected["calendar.i64"] = cal_len * 8
    for name, size in expected.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            raise _corrupt(path, f"{name} is missing") from None
        if actual != size:
            raise _corrupt(path, f"{name} has {actual:,} bytes, {size:,} expected")


def open_store(
    path: str | Path,
    lookback: int,
    horizon: int,
    features: Sequence[str] = FEATURES,
    clip: float = 5.0,
    weights: Sequence[float] | None = None,
    normalization: str = "level",
) -> WindowStore:
    """A read-only memory-mapped :class:`WindowStore` over a built store.

    Args:
        weights: mixture weight per group, overriding those recorded at build time.
        normalization: how windows are normalised (:mod:`kronos.data.transforms`).
    """
    path = Path(path)
    meta = read_meta(path)
    if meta.get("version") != STORE_VERSION:
        raise DataValidationError(
            f"{path}: store version {meta.get('version')} is not {STORE_VERSION}; delete it to rebuild."
        )
    _check_files(path, meta)
    n = int(meta["rows"])

    def mapped(name: str) -> np.ndarray:
        dtype, tail = _FILES[name]
        return np.memmap(path / name, dtype=dtype, mode="r", shape=(n, *tail))

    calendar = np.fromfile(path / "calendar.i64", dtype=np.int64)
    groups = [
        SeriesGroup(g["name"], int(g["start"]), int(g["stop"]), calendar[g["calendar"][0] : g["calendar"][1]],
                    float(weights[i]) if weights is not None else float(g["weight"]))
        for i, g in enumerate(meta["groups"])
    ]
    return WindowStore.from_arrays(
        values=mapped("values.f32"),
        times=mapped("times.i64"),
        stamps=mapped("stamps.u8"),
        offsets=np.fromfile(path / "offsets.i64", dtype=np.int64),
        instruments=meta["instruments"],
        member=mapped("member.bool") if meta["has_member"] else None,
        groups=groups,
        lookback=lookback,
        horizon=horizon,
        features=features,
        clip=clip,
        origin=meta["origin"],
        source_features=tuple(meta["features"]),
        location=str(path),
        normalization=normalization,
    )
