"""TEMPORARY stand-in for ``kronos.data.parquet_source.ParquetSource`` (written on another branch).

Only here so that the memory-mapped store, ``scripts/bench_data.py`` and the DDP test can run on a
long Parquet dataset before the branches merge; same constructor and ``iter_series()`` contract.
Delete this module at merge and point its users at ``kronos.data.parquet_source``
(``resolve_parquet_source`` below is the only switch).

Reads one file or a folder of ``*.parquet`` files (name order) with pyarrow, one record batch at
a time, the symbol column dictionary-encoded; rows must be sorted by symbol, then time (the store
rejects anything else, naming the series and row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES, PRICE_COLUMNS
from kronos.data.panel import Panel

_TIME = ("timestamps", "timestamp", "datetime", "date", "time", "trade_date")
_SYMBOL = ("symbol", "ticker", "instrument", "code", "ts_code")
_ALIASES = {"vol": "volume", "amt": "amount", "turnover": "amount"}


def resolve_parquet_source() -> type:
    """The real ``ParquetSource`` when merged, else this stand-in."""
    try:
        from kronos.data.parquet_source import ParquetSource as Real  # type: ignore[import-not-found]
    except ImportError:
        return ParquetSource
    return Real


class ParquetSource:
    """Long-format Parquet (one row per symbol and time), streamed in record batches.

    Args:
        path: a ``.parquet`` file or a folder of them.
        time_column, symbol_column, member_column: column names (None: the usual aliases / ``member``).
        on_nan: only "raise" (the stand-in does not drop rows).
        batch_rows: rows per record batch read.
    """

    def __init__(self, path: str | Path, time_column: str | None = None, symbol_column: str | None = None,
                 member_column: str | None = None, on_nan: str = "raise", batch_rows: int = 1 << 20) -> None:
        self.path = Path(path)
        self.time_column, self.symbol_column, self.member_column = time_column, symbol_column, member_column
        self.on_nan, self.batch_rows = on_nan, int(batch_rows)

    @property
    def origin(self) -> str:
        return str(self.path)

    def _files(self) -> list[Path]:
        files = sorted(self.path.glob("*.parquet")) if self.path.is_dir() else [self.path]
        if not files or not files[0].is_file():
            raise DataValidationError(f"{self.path}: no Parquet file found; pass a .parquet file or a folder of them.")
        return files

    def _columns(self, names: list[str], file: Path) -> dict[str, str]:
        lower = {n.lower(): n for n in names}

        def pick(wanted: str | None, aliases: tuple[str, ...], what: str) -> str | None:
            if wanted is not None:
                if wanted.lower() not in lower:
                    raise DataValidationError(f"{file}: the {what} column '{wanted}' is missing; columns found: {names}.")
                return lower[wanted.lower()]
            return next((lower[a] for a in aliases if a in lower), None)

        cols = {"time": pick(self.time_column, _TIME, "time"), "symbol": pick(self.symbol_column, _SYMBOL, "symbol"),
                "member": pick(self.member_column, ("member",), "member")}
        for n in names:
            feat = _ALIASES.get(n.lower(), n.lower())
            if feat in FEATURES:
                cols[feat] = n
        missing = [c for c in (*PRICE_COLUMNS, "time", "symbol") if cols.get(c) is None]
        if missing:
            raise DataValidationError(f"{file}: columns {missing} are missing; columns found: {names}.")
        return {k: v for k, v in cols.items() if v is not None}

    def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
        """(symbol, timestamps datetime64[ns] [T], values float32 [T, 6], member bool [T] | None) per symbol."""
        import pyarrow.parquet as pq

        current: str | None = None
        chunks: list[dict[str, np.ndarray]] = []

        def flush() -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None]:
            ts = np.concatenate([c["time"] for c in chunks])
            vals = np.concatenate([c["values"] for c in chunks])
            member = np.concatenate([c["member"] for c in chunks]) if "member" in chunks[0] else None
            return str(current), ts, vals, member

        for file in self._files():
            pf = pq.ParquetFile(file)
            cols = self._columns(pf.schema_arrow.names, file)
            # pre_buffer=False: with pyarrow's default (True) iter_batches keeps every row group it has read
            # buffered until the file is closed, so memory grows with the file instead of one batch.
            pf = pq.ParquetFile(file, read_dictionary=[cols["symbol"]], pre_buffer=False)
            for batch in pf.iter_batches(batch_size=self.batch_rows, columns=sorted(set(cols.values()))):
                sym = batch.column(cols["symbol"])
                if not hasattr(sym, "indices"):
                    sym = sym.dictionary_encode()
                codes = sym.indices.to_numpy(zero_copy_only=False)
                names = sym.dictionary.to_pylist()
                time = batch.column(cols["time"]).cast("timestamp[ns]").to_numpy(zero_copy_only=False)
                n = len(codes)
                values = np.empty((n, len(FEATURES)), np.float32)
                for j, f in enumerate(FEATURES):
                    if f in cols:
                        values[:, j] = batch.column(cols[f]).to_numpy(zero_copy_only=False)
                if "volume" not in cols:
                    values[:, 4] = 0.0
                if "amount" not in cols:
                    values[:, 5] = values[:, 4] * values[:, :4].mean(axis=1)
                member = None
                if "member" in cols:
                    member = batch.column(cols["member"]).to_numpy(zero_copy_only=False).astype(bool)
                cuts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [n]])
                for a, b in zip(cuts[:-1], cuts[1:]):
                    name = names[codes[a]]
                    if name != current and chunks:
                        yield flush()
                        chunks = []
                    current = name
                    part = {"time": time[a:b], "values": values[a:b]}
                    if member is not None:
                        part["member"] = member[a:b]
                    chunks.append(part)
        if chunks:
            yield flush()

    def load(self) -> Panel:
        """All series in RAM (small data only; large data goes through the store)."""
        names, stamps, values, members = [], [], [], []
        for name, ts, vals, member in self.iter_series():
            names.append(name)
            stamps.append(ts)
            values.append(vals)
            members.append(member)
        has_member = any(m is not None for m in members)
        return Panel(names, stamps, values, members if has_member else None, self.origin)

    def fingerprint(self) -> dict[str, Any]:
        from kronos.data.store import describe_inputs

        return {"class": "ParquetSource", "path": describe_inputs(self.path), "columns": [
            self.time_column, self.symbol_column, self.member_column, self.on_nan]}
