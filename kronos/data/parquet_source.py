"""``ParquetSource``: long-format OHLCV from a Parquet file or a folder of them, read in row groups.

Same column aliases and validation as CSV (``kronos.data.ohlcv``: one implementation). Files are
read with pyarrow batch by batch (``batch_rows`` rows at a time, within row groups) and only the
needed columns, so memory follows the batch, not the file.

- ``iter_series()`` streams one series at a time: the input must be sorted by symbol then time
  (files of a folder in name order, a symbol may continue into the next file). Unsorted input is
  refused with the first out-of-order row named; sort it first (e.g. ``df.sort_values([symbol,
  time])``, or DuckDB ``COPY (SELECT * FROM 'in.parquet' ORDER BY symbol, ts) TO 'out.parquet'``).
- ``load() -> Panel`` for data that fits in memory: rows of different symbols may interleave (as
  in CSV); each symbol's timestamps must increase.

A file without a symbol column is one series named after the file stem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES
from kronos.data.ohlcv import (
    NanPolicy,
    normalize_names,
    per_asset_volume_columns,
    plain_row,
    resolve_columns,
    standardize,
)
from kronos.data.panel import Panel
from kronos.data.series import SeriesItem
from kronos.data.source import SourceBase

PARQUET_HINT = "Fix the data at its source (for missing values: data.source.on_nan=drop skips those rows)."


@dataclass
class _Chunk:
    """One validated batch: per row symbol [N] (a string Series), timestamps [N] datetime64[ns], values
    float32 [N, 6], member bool [N] or None, and the source row of each row in its file [N]."""

    file: Path
    symbol: pd.Series
    timestamps: np.ndarray
    values: np.ndarray
    member: np.ndarray | None
    rows: np.ndarray

    def segments(self) -> list[tuple[str, int, int]]:
        """Runs of one symbol as (symbol, start, end); compared in pandas' string arrays, not per Python object."""
        change = (self.symbol != self.symbol.shift()).to_numpy(dtype=bool, na_value=True).copy()
        change[0] = True
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], len(change))
        names = self.symbol.iloc[starts].tolist()
        return [(str(n), int(a), int(b)) for n, a, b in zip(names, starts, ends)]


class ParquetSource(SourceBase):
    """OHLCV from Parquet: one long file (a symbol column) or a folder of files.

    Args:
        path: a Parquet file or a folder of them.
        time_column: the timestamp column; default the first of the CSV aliases present.
        symbol_column: the symbol column; default the first of the CSV aliases present, else each
            file is one series named after its stem.
        member_column: the point-in-time membership column (default ``member``/the single ``in_*``).
        on_nan: "raise" (default) or "drop" rows with a missing feature.
        glob: which files of a folder to read.
        batch_rows: rows converted to pandas at a time (memory bound of the reader).
    """

    def __init__(
        self,
        path: str | Path,
        time_column: str | None = None,
        symbol_column: str | None = None,
        member_column: str | None = None,
        on_nan: NanPolicy = "raise",
        glob: str = "*.parquet",
        batch_rows: int = 262_144,
    ) -> None:
        self.path = Path(path).expanduser()
        self.time_column, self.symbol_column, self.member_column = time_column, symbol_column, member_column
        self.on_nan = on_nan
        self.glob = glob
        self.batch_rows = int(batch_rows)

    @property
    def origin(self) -> str:
        """``ParquetSource(<path>)``, for messages."""
        return f"ParquetSource({self.path})"

    def files(self) -> list[Path]:
        """The Parquet files read, in name order."""
        if self.path.is_dir():
            files = sorted(p for p in self.path.glob(self.glob) if p.is_file())
            if not files:
                raise DataValidationError(f"{self.path}: no files match '{self.glob}'. Check data.source.path/glob.")
            return files
        if not self.path.is_file():
            raise DataValidationError(f"{self.path}: file not found. Check the path (data.source.path=...).")
        return [self.path]

    def _chunks(self, file: Path) -> Iterator[_Chunk]:
        """Validated batches of ``file`` in file order, reading only the columns needed."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        src = str(file)
        try:
            # pre_buffer=False: pyarrow would otherwise read whole row groups ahead (~8x the batch in RAM)
            pf = pq.ParquetFile(file, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as err:
            raise DataValidationError(f"{src}: not a readable Parquet file ({err}).") from err
        names = list(pf.schema_arrow.names)
        header = normalize_names(pd.DataFrame(columns=names), src)
        original = dict(zip(header.columns, names))
        cols = resolve_columns(list(header.columns), src, self.time_column, self.symbol_column, self.member_column)
        # header names are already alias-resolved (Vol -> volume), in the file's order
        wanted = {cols.time, cols.symbol, cols.member, *FEATURES, *per_asset_volume_columns(list(header.columns))}
        read = [n for low, n in original.items() if low in wanted]
        offset = 0
        for batch in pf.iter_batches(batch_size=self.batch_rows, columns=read):
            frame = normalize_names(batch.to_pandas(date_as_object=False), src)
            out, rows = standardize(frame, cols, src, on_nan=self.on_nan, row=plain_row, row_offset=offset,
                                    hint=PARQUET_HINT)
            offset += batch.num_rows
            if not len(out):
                continue
            symbol = (out["symbol"].reset_index(drop=True) if cols.symbol is not None
                      else pd.Series([file.stem] * len(out), dtype="string"))
            yield _Chunk(file, symbol, out["timestamps"].to_numpy(), out[list(FEATURES)].to_numpy(np.float32),
                         out["member"].to_numpy(bool) if "member" in out.columns else None, rows)

    def iter_series(self) -> Iterator[SeriesItem]:
        """Stream (symbol, timestamps datetime64[ns] [T], values float32 [T, 6], member bool [T] | None).

        Series come in symbol order, one in memory at a time. Raises DataValidationError at the
        first row out of (symbol, time) order.
        """
        current: str | None = None
        last_ts: np.datetime64 | None = None
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

        def flush() -> SeriesItem:
            ts = np.concatenate([p[0] for p in parts])
            values = np.ascontiguousarray(np.concatenate([p[1] for p in parts]))
            member = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
            return str(current), ts, values, member

        for file in self.files():
            for chunk in self._chunks(file):
                for name, s, e in chunk.segments():
                    if current is not None and name != current:
                        if name < current:
                            raise DataValidationError(
                                f"{file}: row {int(chunk.rows[s])} (symbol {name!r}) comes after symbol {current!r}: "
                                "the data is not sorted by symbol. Streaming needs rows sorted by symbol then time; "
                                "sort the data first (e.g. pandas df.sort_values([symbol, time]))."
                            )
                        yield flush()
                        parts, last_ts = [], None
                    ts = chunk.timestamps[s:e]
                    _check_increasing(ts, last_ts, file, chunk.rows[s:e], name)
                    member = None if chunk.member is None else chunk.member[s:e]
                    parts.append((ts, chunk.values[s:e], member))
                    current, last_ts = name, ts[-1]
        if current is None:
            raise DataValidationError(f"{self.path}: the Parquet data has no rows.")
        yield flush()

    def load(self) -> Panel:
        """All series as a Panel (symbols may interleave; each symbol's timestamps must increase)."""
        groups: dict[str, list[tuple[_Chunk, np.ndarray]]] = {}
        for file in self.files():
            for chunk in self._chunks(file):
                for name, idx in chunk.symbol.groupby(chunk.symbol, sort=False).indices.items():
                    groups.setdefault(str(name), []).append((chunk, idx))
        if not groups:
            raise DataValidationError(f"{self.path}: the Parquet data has no rows.")
        names, stamps, values, members = [], [], [], []
        for name in sorted(groups):
            last: np.datetime64 | None = None
            for chunk, idx in groups[name]:
                _check_increasing(chunk.timestamps[idx], last, chunk.file, chunk.rows[idx], name)
                last = chunk.timestamps[idx][-1]
            names.append(name)
            stamps.append(np.concatenate([c.timestamps[i] for c, i in groups[name]]))
            values.append(np.ascontiguousarray(np.concatenate([c.values[i] for c, i in groups[name]])))
            if groups[name][0][0].member is not None:
                members.append(np.concatenate([c.member[i] for c, i in groups[name]]))
        return Panel(names, stamps, values, members if len(members) == len(names) else None, origin=str(self.path))


def _check_increasing(ts: np.ndarray, last: np.datetime64 | None, file: Path, rows: np.ndarray, name: str) -> None:
    """Refuse timestamps [N] of one symbol that do not increase strictly (also across the previous chunk)."""
    full = ts if last is None else np.concatenate([[last], ts])
    step = np.diff(full.astype(np.int64))
    bad = np.flatnonzero(step <= 0)
    if len(bad):
        k = int(bad[0])
        i = k + 1 if last is None else k  # the offending element's index in ts
        what = "a duplicated" if step[k] == 0 else "an unsorted"
        raise DataValidationError(
            f"{file}: {what} timestamp {pd.Timestamp(ts[i])} for symbol {name!r} at row {int(rows[i])} "
            "(timestamps must increase strictly within a symbol; sort by symbol then time and drop duplicates)."
        )
