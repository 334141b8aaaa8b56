"""Reading and validating OHLCV CSV files; ``CSVSource`` turns them into a ``Panel``.

``read_ohlcv_csv`` is the single reader used by training, the web UI and the CLI, so that
every entry point accepts the same files and rejects bad ones with the same message.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Iterator

import pandas as pd

from kronos.data.errors import DataValidationError, clean_csv_hint, quoted
from kronos.data.ohlcv import (  # noqa: F401  (aliases re-exported: data_pipelines.clean_csv uses them)
    COLUMN_ALIASES,
    SYMBOL_ALIASES,
    TIME_ALIASES,
    NanPolicy,
    check_min_rows,
    check_order,
    csv_row,
    normalize_names,
    resolve_columns,
    standardize,
)
from kronos.data.panel import Panel
from kronos.data.series import SeriesItem, iter_panel
from kronos.data.source import SourceBase

log = logging.getLogger(__name__)
_DATA_LIKE = (".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz", ".tsv", ".txt", ".parquet")
MAX_CSV_COLUMNS = 256  # an OHLCV file has a handful; far more is not one (and is costly to parse)
MAX_HEADER_BYTES = 64 * 1024


def _first_lines(path_or_buffer: str | Path | io.IOBase, count: int, limit: int) -> list[bytes | str]:
    """Up to ``count`` first lines, each read to at most ``limit + 1`` characters (a buffer is rewound)."""
    if isinstance(path_or_buffer, (str, Path)):
        with open(path_or_buffer, "rb") as fh:
            return [fh.readline(limit + 1) for _ in range(count)]
    if hasattr(path_or_buffer, "seek") and hasattr(path_or_buffer, "tell"):
        pos = path_or_buffer.tell()
        lines = [path_or_buffer.readline(limit + 1) for _ in range(count)]
        path_or_buffer.seek(pos)
        return lines
    return []


def check_header_width(path_or_buffer: str | Path | io.IOBase, src: str) -> None:
    """Refuse, before pandas parses anything, a header of more than MAX_CSV_COLUMNS fields or MAX_HEADER_BYTES.

    A file of hundreds of thousands of columns would otherwise take minutes and gigabytes to be read
    before any check ran (the banner line of ``banner_lines`` is looked past).

    Raises:
        DataValidationError: naming the file, the width found and the limit.
    """
    try:
        lines = _first_lines(path_or_buffer, 2, MAX_HEADER_BYTES)
    except OSError:
        return  # a missing or unreadable file is reported by the reader with its own message
    for line in lines[: 1 + banner_lines(path_or_buffer)][-1:]:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)
        if len(line) > MAX_HEADER_BYTES:
            raise DataValidationError(f"{src}: the header line is longer than {MAX_HEADER_BYTES // 1024} KB: an OHLCV "
                                      f"CSV has a few short column names (timestamps, open, high, low, close, ...)")
        width = text.count(",") + 1
        if width > MAX_CSV_COLUMNS:
            raise DataValidationError(f"{src}: the header has {width:,} columns; an OHLCV CSV has at most "
                                      f"{MAX_CSV_COLUMNS} (timestamps, symbol, open, high, low, close, volume, amount)")


def banner_lines(path_or_buffer: str | Path | io.IOBase) -> int:
    """1 when the file starts with a one-field banner line before its header, else 0.

    CryptoDataDownload exports (the usual source of ``Volume BTC``/``Volume USDT`` files) open with
    their URL on a line of its own; read as the header it would hide every real column.
    """
    lines = _first_lines(path_or_buffer, 1, 4095)
    if not lines:
        return 0
    first = lines[0]
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return int(text.strip().lower().startswith(("http://", "https://", "www.")) and "," not in text)


def read_ohlcv_csv(
    path_or_buffer: str | Path | io.IOBase,
    time_column: str | None = None,
    symbol_column: str | None = None,
    name: str | None = None,
    *,
    member_column: str | None = None,
    on_nan: NanPolicy = "raise",
    min_rows: int = 1,
) -> pd.DataFrame:
    """Read one OHLCV CSV, resolve column aliases and validate it (rules: ``kronos.data.ohlcv``).

    Args:
        path_or_buffer: a file path or an open text/bytes buffer (web uploads).
        time_column: the timestamp column; default: the first of TIME_ALIASES present.
        symbol_column: the symbol column of a long file; default: the first of SYMBOL_ALIASES
            present, else none (one series).
        name: how to call the data in messages (default: the path).
        member_column: a boolean/0-1 universe-membership column (e.g. ``in_csi300``);
            default: ``member`` or the single ``in_*`` column when present.
        on_nan: "raise" on any missing feature value, or "drop" those rows (suspension days).
        min_rows: fewest rows each series must have (e.g. lookback + horizon).

    Returns:
        DataFrame with ``timestamps`` (datetime64[ns], naive UTC), ``symbol`` (when a long file), the
        six FEATURES (float64; missing volume/amount filled per the spec) and ``member`` (bool) when given.

    Raises:
        DataValidationError: missing file or column, columns equal up to case, non-numeric text,
            NaN, inf, non-positive prices, high < low, negative volume, unparseable or epoch-number
            timestamps, mixed offset/offset-less timestamps, unsorted or duplicated timestamps, too
            few rows; naming file, column and first bad row, with the repair command where one helps.
    """
    src = name or (str(path_or_buffer) if isinstance(path_or_buffer, (str, Path)) else "<uploaded csv>")
    if isinstance(path_or_buffer, (str, Path)) and not Path(path_or_buffer).is_file():
        raise DataValidationError(f"{src}: file not found. Check the path (data.source.path=...).")
    check_header_width(path_or_buffer, src)
    try:
        df = pd.read_csv(path_or_buffer, skiprows=banner_lines(path_or_buffer))
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataValidationError(f"{src}: not a readable CSV file ({err}). {clean_csv_hint(src)}") from err
    df = normalize_names(df, src)
    cols = resolve_columns(list(df.columns), src, time_column, symbol_column, member_column)
    # the repair command repeats the columns this read used, so running it as printed keeps the series apart
    hint = clean_csv_hint(src, time_column=cols.time if time_column else None, symbol_column=cols.symbol)
    out, rows = standardize(df, cols, src, on_nan=on_nan, row=csv_row, hint=hint)
    check_order(out, src, cols.time, rows, csv_row, hint)
    counts = out.groupby("symbol", sort=False).size() if cols.symbol else pd.Series({src: len(out)})
    check_min_rows(counts, src, min_rows)
    return out


class CSVSource(SourceBase):
    """OHLCV from CSV: one file (one series), a folder of per-symbol files, or one long file.

    Args:
        path: a CSV file or a folder of CSV files (symbol = file stem).
        time_column: see ``read_ohlcv_csv``.
        symbol_column: the symbol column of a long file (auto-detected when named like symbol/ticker/code).
        glob: which files of a folder to read.
        member_column: the point-in-time membership column (auto-detected ``member``/``in_*``).
        on_nan: "raise" (default) or "drop" rows with a missing feature (e.g. suspension days).
    """

    def __init__(
        self,
        path: str | Path,
        time_column: str | None = None,
        symbol_column: str | None = None,
        glob: str = "*.csv",
        member_column: str | None = None,
        on_nan: NanPolicy = "raise",
    ) -> None:
        self.path = Path(path).expanduser()
        self.time_column = time_column
        self.symbol_column = symbol_column
        self.glob = glob
        self.member_column = member_column
        self.on_nan = on_nan

    def _read(self, file: Path) -> pd.DataFrame:
        return read_ohlcv_csv(file, self.time_column, self.symbol_column,
                              member_column=self.member_column, on_nan=self.on_nan)

    def frames(self) -> dict[str, pd.DataFrame]:
        """{symbol: validated DataFrame} in file / first-appearance order.

        In a folder, a symbol found in several files (e.g. one long file per year) is the concatenation
        of its rows in time order (:func:`merge_symbol_parts`); rows of two files on the same timestamp
        must agree, else the read is refused.
        """
        if self.path.is_dir():
            files = self.files()
            if not files:
                raise DataValidationError(f"{self.path}: no files match '{self.glob}'. Check data.source.path/glob.")
            parts: dict[str, list[tuple[Path, pd.DataFrame]]] = {}
            for f in files:
                df = self._read(f)
                if "symbol" in df.columns:
                    for s, g in df.groupby("symbol", sort=False):
                        parts.setdefault(str(s), []).append((f, g.drop(columns="symbol")))
                else:
                    parts.setdefault(f.stem, []).append((f, df))
            return {symbol: merge_symbol_parts(symbol, pieces) for symbol, pieces in parts.items()}
        df = self._read(self.path)
        if "symbol" not in df.columns:
            return {self.path.stem: df}
        return {str(s): g.drop(columns="symbol").reset_index(drop=True) for s, g in df.groupby("symbol", sort=False)}

    def files(self) -> list[Path]:
        """The folder's files matching ``glob``; the default ``*.csv`` also takes ``.CSV``/``.Csv`` files. Files
        that look like data but do not match (``.csv.gz``, ``.tsv``, ...) are named in a warning, never dropped
        without a word."""
        if self.glob == "*.csv":
            files = sorted(p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
        else:
            files = sorted(p for p in self.path.glob(self.glob) if p.is_file())
        skipped = sorted(p.name for p in self.path.iterdir()
                         if p.is_file() and p not in files and p.name.lower().endswith(_DATA_LIKE))
        if skipped:
            log.warning("%s: %d file(s) not read (they do not match data.source.glob=%r): %s", self.path,
                        len(skipped), self.glob, ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
        return files

    @property
    def origin(self) -> str:
        """``CSVSource(<path>)``, for messages."""
        return f"CSVSource({self.path})"

    def load(self) -> Panel:
        """All series as a Panel (origin = the path, for messages)."""
        return Panel.from_frames(self.frames(), origin=str(self.path))

    def iter_series(self) -> Iterator[SeriesItem]:
        """Each series as (symbol, timestamps datetime64[ns] [T], values float32 [T, 6], member bool [T] | None),
        in symbol order (CSV files are read whole: this walks the loaded panel)."""
        yield from iter_panel(self.load())



def merge_symbol_parts(symbol: str, parts: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """One symbol's rows from several files of a folder, concatenated in time order.

    Rows of two files on the same timestamp are kept once when every column agrees (a file per year that
    repeats its boundary day) and refused otherwise: nothing is dropped or overwritten silently.

    Args:
        symbol: the symbol, for messages.
        parts: (file, validated frame with ``timestamps``) per file holding the symbol, in file order.

    Raises:
        DataValidationError: naming the files, the symbol and how many timestamps disagree.
    """
    if len(parts) == 1:
        return parts[0][1].reset_index(drop=True)
    tagged = pd.concat([df.assign(_file=str(f)) for f, df in parts], ignore_index=True)
    tagged = tagged.sort_values("timestamps", kind="stable").reset_index(drop=True)
    dup = tagged["timestamps"].duplicated(keep=False)
    if dup.any():
        columns = [c for c in tagged.columns if c != "_file"]
        repeated = tagged[dup]
        distinct = repeated.drop_duplicates(subset=columns)
        clash = distinct["timestamps"][distinct["timestamps"].duplicated(keep=False)]
        if len(clash):
            files = sorted(set(repeated.loc[repeated["timestamps"].isin(clash), "_file"]))
            raise DataValidationError(
                f"symbol {quoted(symbol)}: {clash.nunique()} timestamp(s) (first {pd.Timestamp(clash.iloc[0])}) appear "
                f"in several files with different values ({', '.join(files)}): keep each row in one file, or "
                "make the repeated rows identical.")
        log.info("symbol %s: %d row(s) repeated identically across files were read once", symbol,
                 int(dup.sum() - repeated["timestamps"].nunique()))
        tagged = tagged.drop_duplicates(subset=columns)
    return tagged.drop(columns="_file").reset_index(drop=True)
