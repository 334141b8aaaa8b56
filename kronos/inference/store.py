"""The forecast store: decision forecasts computed once per key, kept under the experiment, read back in batches.

Layout of one store, ``outputs/<name>/forecasts/<key>/`` (``Experiment.forecasts_dir``)::

    key.json                     what the key hashes (weights, data and windows, sampling, ...), written first
    part-r<rank>-<run>-<n>.parquet   one shard: every field of DecisionForecast for up to SHARD_WINDOWS windows
    manifest.json                counts, shards and sizes, rewritten (atomically) after each fill

A shard is written under a hidden temporary name and renamed into place when complete, so a run killed
at any point (kill -9 included) leaves only whole shards; the next run reads which windows they hold
and computes only the others. A window is identified by (instrument, decision time); its sample paths
depend on the key and the window alone (per-window draws, :mod:`kronos.inference.token_sampling`), so
windows computed by another rank, batch size or an earlier run are the same paths.

Every field of :class:`~kronos.inference.decisions.DecisionForecast` is stored (iterating
``dataclasses.fields``): an array [B] as a plain column, [B, ...] as a fixed-size list column whose row
shape and dtype are in the shard's schema metadata, a mapping of such arrays as ``<field>.<name>`` columns.
The field names enter the key, so a store written before a field was added is never read as complete.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kronos.atomic import atomic_path, atomic_write_json
from kronos.errors import KronosUserError
from kronos.inference.decisions import DecisionForecast

FORMAT_VERSION = 1
# Windows per shard: what a kill can lose, and the unit of a write (KRONOS_SHARD_WINDOWS overrides it, e.g. in
# the kill-and-resume tests and benchmarks, whose splits are small).
SHARD_WINDOWS = int(os.environ.get("KRONOS_SHARD_WINDOWS", "1024"))
KEY_FILE, MANIFEST_FILE = "key.json", "manifest.json"
WEIGHT_FILES = ("config.json", "model.safetensors", "training_info.json")
_META = b"kronos_fields"


class ForecastStoreError(KronosUserError):
    """A forecast store cannot be used as asked (a key that does not match its directory, an unknown store)."""


# ----------------------------------------------------------------------------------------------- the key
def _sha256_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_fingerprint(location: str | os.PathLike | None, module: Any = None) -> dict[str, Any]:
    """What one weights source contributes to the key.

    A directory: the SHA-256 of its ``config.json``, ``model.safetensors`` and ``training_info.json`` (those
    present; the last records e.g. a normalisation mode or a calibrated temperature). Anything else (a hub
    id, a module built in memory): the SHA-256 of ``module``'s state dict, else the location string.
    """
    if location is not None and Path(location).is_dir():
        files = [Path(location) / name for name in WEIGHT_FILES if (Path(location) / name).is_file()]
        return {"files": [f.name for f in files], "sha256": _sha256_files(files)}
    if module is not None and hasattr(module, "state_dict"):
        digest = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return {"location": None if location is None else str(location), "state_sha256": digest.hexdigest()}
    return {"location": str(location)}


def data_fingerprint(datamodule: Any) -> dict[str, Any]:
    """The data and the windows: the source's fingerprint (kronos.data.store), splits, lookback, horizon,
    features and clip (what a decision window's inputs depend on)."""
    from kronos.data.store import fingerprint

    source = getattr(datamodule, "source", None)
    return {"source": fingerprint(source)[0] if source is not None else None,
            "splits": _plain(getattr(datamodule, "splits", None)),
            "lookback": int(datamodule.lookback), "horizon": int(datamodule.horizon),
            "features": [str(f) for f in datamodule.features], "clip": _plain(getattr(datamodule, "clip", None))}


def _plain(value: Any) -> Any:
    """A JSON-able copy (OmegaConf containers, tuples, numpy scalars)."""
    return json.loads(json.dumps(value, default=str)) if value is not None else None


@dataclass(frozen=True)
class ForecastKey:
    """Everything a store's sample paths depend on, and its digest (the store's directory name).

    Attributes:
        fields: JSON-able ``{format, decision_fields, weights, data, windows, sampling, max_context, cache,
            precision}``.
    """

    fields: Mapping[str, Any]

    @property
    def digest(self) -> str:
        """20 hex digits of the SHA-256 of the fields' canonical JSON."""
        text = json.dumps(self.fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def forecast_key(*, weights: Mapping[str, Any], data: Mapping[str, Any], windows: Mapping[str, Any],
                 sampling: Any, max_context: int, cache: str, precision: str = "fp32") -> ForecastKey:
    """The key of a set of decision forecasts.

    Args:
        weights: ``{tokenizer: weights_fingerprint(...), predictor: ...}``.
        data: :func:`data_fingerprint`.
        windows: which windows (e.g. ``{split, stride}``).
        sampling: a ``SamplingSettings`` (T, top_k, top_p, sample_count, seed; spread when not 1).
        max_context: the predictor's window; cache: ``exact``, ``rolling`` or ``none``.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast of the forecasts).
    """
    return ForecastKey({
        "format": FORMAT_VERSION,
        "decision_fields": [f.name for f in dataclasses.fields(DecisionForecast)],
        "weights": _plain(dict(weights)), "data": _plain(dict(data)), "windows": _plain(dict(windows)),
        "sampling": {k: getattr(sampling, k) for k in ("T", "top_k", "top_p", "sample_count", "seed")}
        | _spread_field(sampling),
        "max_context": int(max_context), "cache": str(cache), "precision": str(precision),
    })


def _spread_field(sampling: Any) -> dict[str, float]:
    """``{spread}`` when the paths are fanned out (!= 1); nothing at 1, so the stores written before the spread
    existed keep their keys (their paths are the spread-1 paths)."""
    spread = float(getattr(sampling, "spread", 1.0))
    return {} if spread == 1.0 else {"spread": spread}


def window_ids(instruments: Iterable[Any], when_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """int64 [B]: a 63-bit identity of each window, a hash of (instrument, decision time ns)."""
    out = [int.from_bytes(hashlib.blake2b(f"{i}|{int(t)}".encode(), digest_size=8).digest(), "little") & (2**63 - 1)
           for i, t in zip(instruments, np.asarray(when_ns))]
    return np.array(out, dtype=np.int64)


# ------------------------------------------------------------------------------------ shard (de)coding
def forecast_table(forecast: DecisionForecast) -> pa.Table:
    """One DecisionForecast [B windows] as a table: every dataclass field, plus ``window`` (its id)."""
    n = len(forecast)
    columns: dict[str, pa.Array] = {"window": pa.array(window_ids(forecast.instrument, forecast.datetime))}
    meta: dict[str, Any] = {}
    for f in dataclasses.fields(forecast):
        value = getattr(forecast, f.name)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        meta[f.name] = {"mapping": isinstance(value, Mapping), "columns": {}}
        for sub, part in items:
            name = f.name if sub is None else f"{f.name}.{sub}"
            columns[name], meta[f.name]["columns"][name] = _encode(name, np.asarray(part), n)
    table = pa.table(columns)
    return table.replace_schema_metadata({_META: json.dumps(meta).encode()})


def _encode(name: str, array: np.ndarray, n: int) -> tuple[pa.Array, dict[str, Any]]:
    if array.ndim == 0 or array.shape[0] != n:
        raise ValueError(f"DecisionForecast.{name} has shape {array.shape}: the store keeps per-window arrays "
                         f"[B={n}, ...]")
    if array.dtype == object or array.dtype.kind in "US":
        return pa.array([str(v) for v in array], pa.string()), {"dtype": "str", "shape": []}
    flat = np.ascontiguousarray(array).reshape(n, -1)
    spec = {"dtype": array.dtype.str, "shape": list(array.shape[1:])}
    if array.ndim == 1:
        return pa.array(flat[:, 0]), spec
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]), spec


def _decode(column: pa.ChunkedArray | pa.Array, spec: Mapping[str, Any], n: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if spec["dtype"] == "str":
        return np.array(column.to_pylist(), dtype=object)
    dtype = np.dtype(spec["dtype"])
    if not spec["shape"]:
        return column.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return values.reshape(n, *spec["shape"])


def table_forecast(table: pa.Table | pa.RecordBatch, meta: Mapping[str, Any]) -> DecisionForecast:
    """The inverse of :func:`forecast_table` (``meta``: the shard's field metadata)."""
    n = table.num_rows
    kwargs: dict[str, Any] = {}
    for name, spec in meta.items():
        parts = {col: _decode(table.column(col), s, n) for col, s in spec["columns"].items()}
        kwargs[name] = ({col.split(".", 1)[1]: v for col, v in parts.items()} if spec["mapping"]
                        else parts[name])
    return DecisionForecast(**kwargs)


def _take(forecast: DecisionForecast, rows: np.ndarray) -> DecisionForecast:
    """The windows ``rows`` (int indices) of a forecast (mappings of arrays taken item by item)."""
    def pick(value: Any) -> Any:
        return {k: np.asarray(v)[rows] for k, v in value.items()} if isinstance(value, Mapping) else value[rows]
    return DecisionForecast(**{f.name: pick(getattr(forecast, f.name)) for f in dataclasses.fields(forecast)})


def concat_forecasts(parts: Sequence[DecisionForecast]) -> DecisionForecast:
    """Forecasts joined window-wise (mappings of arrays joined item by item)."""
    def join(values: list[Any]) -> Any:
        if isinstance(values[0], Mapping):
            return {k: np.concatenate([v[k] for v in values]) for k in values[0]}
        return np.concatenate(values)
    return DecisionForecast(**{f.name: join([getattr(p, f.name) for p in parts])
                               for f in dataclasses.fields(DecisionForecast)})


# ----------------------------------------------------------------------------------------------- store
@dataclass
class FillCounts:
    """What a fill did: ``requested`` windows, of which ``reused`` were stored before and ``computed`` now
    (by every rank together)."""

    requested: int = 0
    reused: int = 0
    computed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class ShardWriter:
    """Buffers forecasts and writes them as whole shards (aside, then renamed) of ``SHARD_WINDOWS`` windows."""

    def __init__(self, store: "ForecastStore", rank: int, shard_windows: int = SHARD_WINDOWS) -> None:
        self.store, self.rank, self.limit = store, rank, shard_windows
        self.run = uuid.uuid4().hex[:8]
        self.pending: list[DecisionForecast] = []
        self.count, self.written = 0, 0

    def add(self, forecast: DecisionForecast) -> None:
        self.pending.append(forecast)
        self.count += len(forecast)
        if self.count >= self.limit:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one shard (nothing when empty)."""
        if not self.pending:
            return
        table = forecast_table(concat_forecasts(self.pending))
        path = self.store.root / f"part-r{self.rank:04d}-{self.run}-{self.written:06d}.parquet"
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self.pending, self.count, self.written = [], 0, self.written + 1


@dataclass
class ForecastStore:
    """One store directory (see the module docstring).

    Attributes:
        root: ``<experiment>/forecasts/<key digest>``.
        key: the key it holds.
    """

    root: Path
    key: ForecastKey
    _index: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def open(cls, forecasts_dir: str | os.PathLike, key: ForecastKey) -> "ForecastStore":
        """The store of ``key`` under ``forecasts_dir`` (created with its ``key.json`` when new).

        Raises:
            ForecastStoreError: the directory holds another key's ``key.json``.
        """
        root = Path(forecasts_dir) / key.digest
        root.mkdir(parents=True, exist_ok=True)
        key_file = root / KEY_FILE
        wanted = json.loads(json.dumps(key.fields, sort_keys=True, default=str))
        if key_file.is_file():
            found = json.loads(key_file.read_text())
            if found != wanted:
                raise ForecastStoreError(f"{key_file} holds another key than its directory name says: remove "
                                         f"the store (python -m kronos.forecasts remove {root})")
        else:
            atomic_write_json(key_file, wanted)
        return cls(root, key)

    def shards(self) -> list[Path]:
        """The complete shards, in name order (half-written ones have hidden temporary names)."""
        return sorted(self.root.glob("part-*.parquet"))

    def stored_ids(self) -> np.ndarray:
        """int64 [M]: the window ids of every complete shard (read from the ``window`` column only)."""
        parts = [pq.read_table(p, columns=["window"]).column("window").to_numpy() for p in self.shards()]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def read(self, batch_size: int, keep: Callable[[DecisionForecast], np.ndarray] | None = None,
             ids: np.ndarray | None = None) -> Iterator[DecisionForecast]:
        """The stored forecasts, ``batch_size`` windows at a time (shard by shard), each window once.

        Args:
            keep: optional filter, a forecast -> bool [B] (e.g. decision times inside a range).
            ids: optional window ids to keep (others are skipped).

        Memory: one batch, plus the ids of every stored window (8 bytes each) to skip a window stored twice
        (by two runs that filled the same store at once).
        """
        shards = self.shards()
        per_shard = [pq.read_table(p, columns=["window"]).column("window").to_numpy() for p in shards]
        first = np.zeros(sum(len(w) for w in per_shard), dtype=bool)
        if len(first):
            first[np.unique(np.concatenate(per_shard), return_index=True)[1]] = True
        offset = 0
        for path, shard_ids in zip(shards, per_shard):
            handle = pq.ParquetFile(path)
            meta = json.loads(handle.schema_arrow.metadata[_META])
            for batch in handle.iter_batches(batch_size=batch_size):
                n = batch.num_rows
                fresh = first[offset:offset + n].copy()
                offset += n
                if ids is not None:
                    fresh &= np.isin(batch.column("window").to_numpy(), ids)
                if not fresh.any():
                    continue
                forecast = table_forecast(batch, meta)
                if keep is not None:
                    fresh &= np.asarray(keep(forecast), dtype=bool)
                rows = np.flatnonzero(fresh)
                if len(rows):
                    yield forecast if len(rows) == n else _take(forecast, rows)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.iterdir() if p.is_file())

    def write_manifest(self, counts: FillCounts, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Rewrite ``manifest.json`` (after the shards it lists are complete) and return it."""
        shards = self.shards()
        manifest = {"format": FORMAT_VERSION, "key": self.key.digest,
                    "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "windows": int(len(np.unique(self.stored_ids()))), "shards": len(shards),
                    "bytes": int(sum(p.stat().st_size for p in shards)), "last_fill": counts.as_dict(),
                    **dict(extra or {})}
        atomic_write_json(self.root / MANIFEST_FILE, manifest)
        return manifest

    def manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST_FILE
        return json.loads(path.read_text()) if path.is_file() else None


def list_stores(forecasts_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per store under ``forecasts_dir``: key, windows, shards, bytes, updated, and the key's fields."""
    root = Path(forecasts_dir)
    rows = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        key_file, man = path / KEY_FILE, path / MANIFEST_FILE
        manifest = json.loads(man.read_text()) if man.is_file() else {}
        fields_ = json.loads(key_file.read_text()) if key_file.is_file() else {}
        size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
        updated = manifest.get("updated") or _dt.datetime.fromtimestamp(
            path.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        rows.append({"key": path.name, "path": str(path), "windows": manifest.get("windows"),
                     "shards": len(list(path.glob("part-*.parquet"))), "bytes": size, "updated": updated,
                     "complete": bool(manifest), "fields": fields_})
    return rows


def remove_store(path: str | os.PathLike) -> None:
    """Delete one store directory (refuses anything that holds no ``key.json``)."""
    path = Path(path)
    if not (path / KEY_FILE).is_file():
        raise ForecastStoreError(f"{path} is not a forecast store (no {KEY_FILE}): nothing removed")
    shutil.rmtree(path)


def _batch_ids(batch: Mapping[str, Any]) -> np.ndarray:
    when = batch["datetime"]
    when = when.numpy() if hasattr(when, "numpy") else np.asarray(when)
    return window_ids([str(i) for i in batch["instrument"]], when.astype(np.int64))


def fill_store(store: ForecastStore, predictor: Any, batches: Iterable[Mapping[str, Any]], sampling: Any, *,
               features: Sequence[str] | None = None, ranks: Any = None, progress: Any = None,
               shard_windows: int = SHARD_WINDOWS) -> FillCounts:
    """Forecast every window of ``batches`` the store lacks and write it there; every rank calls this.

    Args:
        store: the store of this (predictor, data, windows, sampling) key.
        predictor: exposes ``forecast_normalized`` (kronos.inference.decisions).
        batches: decision batches (the same sequence on every rank).
        sampling: the key's sampling settings.
        features: the F feature names of the batches (the candle repair reads them; None: the six FEATURES).
        ranks: :class:`kronos.inference.ranks.Ranks` (None: one process); rank r forecasts the batches
            whose index is r modulo the world size.
        progress: a :class:`kronos.inference.progress.ProgressLine` (ticked per batch), or None.
        shard_windows: windows per shard (what a kill can lose).

    Returns:
        The counts, the same on every rank: requested windows, reused (stored before) and computed now.
        Every rank's shards are complete when this returns (a barrier ends the fill).
    """
    from kronos.data.features import FEATURES
    from kronos.inference.decisions import forecast_decisions, select_windows
    from kronos.inference.memory import release_freed_memory
    from kronos.inference.ranks import Ranks

    ranks = ranks or Ranks()
    before = store.stored_ids()
    ranks.barrier()  # every rank reads the same "before", then writes
    counts, writer = FillCounts(), ShardWriter(store, ranks.rank, shard_windows)
    for index, batch in enumerate(batches):
        missing = ~np.isin(_batch_ids(batch), before)
        n = len(missing)
        counts.requested += n
        counts.computed += int(missing.sum())
        if ranks.mine(index) and missing.any():
            writer.add(forecast_decisions(predictor, select_windows(batch, missing), sampling,
                                          features=tuple(features) if features is not None else FEATURES))
            release_freed_memory()
        if progress is not None:
            progress.update(n)
    writer.flush()
    counts.reused = counts.requested - counts.computed
    ranks.barrier()
    return counts


def predictor_fingerprint(predictor: Any, weights: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{tokenizer, predictor}`` :func:`weights_fingerprint` of a loaded pair: its weights directories' files
    when ``weights`` names them (``{kind: {location: ...}}``), else its modules' state dicts."""
    modules = {"tokenizer": getattr(predictor, "tokenizer", None), "predictor": getattr(predictor, "model", None)}
    out = {}
    for kind, module in modules.items():
        source = (weights or {}).get(kind)
        location = source.get("location") if isinstance(source, Mapping) else source
        out[kind] = weights_fingerprint(location, module)
    return out


def cache_mode(predictor: Any) -> str:
    """How a predictor decodes: ``rolling`` (approximate ring buffer), ``exact`` (KV cache) or ``none``."""
    if getattr(predictor, "rolling_cache", False):
        return "rolling"
    return "exact" if getattr(predictor, "use_cache", True) else "none"
