"""Reading and validating OHLCV CSV files; ``CSVSource`` turns them into a ``Panel``.

``read_ohlcv_csv`` is the single reader used by training, the web UI and the CLI, so that
every entry point accepts the same files and rejects bad ones with the same message.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError, clean_csv_hint
from kronos.data.features import FEATURES, PRICE_COLUMNS, fill_volume_amount
from kronos.data.panel import Panel

TIME_ALIASES: tuple[str, ...] = ("timestamps", "timestamp", "datetime", "date", "time", "trade_date")
SYMBOL_ALIASES: tuple[str, ...] = ("symbol", "ticker", "instrument", "code", "ts_code")
COLUMN_ALIASES: dict[str, str] = {"vol": "volume", "amt": "amount", "turnover": "amount"}

NanPolicy = Literal["raise", "drop"]


def _row(i: int) -> str:
    """A data row (0-based, header excluded) as the user finds it in an editor."""
    return f"row {i} (line {i + 2} of the file)"


def _pick(columns: list[str], wanted: str | None, aliases: tuple[str, ...], what: str, src: str) -> str | None:
    if wanted is not None:
        key = wanted.strip().lower()
        if key not in columns:
            raise DataValidationError(
                f"{src}: the {what} column '{wanted}' is missing; columns found: {columns}. "
                f"Pass the right name ({what}_column=...)."
            )
        return key
    return next((a for a in aliases if a in columns), None)


def _coerce_numeric(df: pd.DataFrame, col: str, src: str) -> None:
    raw = df[col]
    if pd.api.types.is_numeric_dtype(raw):
        df[col] = raw.astype(np.float64)
        return
    num = pd.to_numeric(raw, errors="coerce")
    bad = np.flatnonzero(num.isna().to_numpy() & raw.notna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"{src}: column '{col}' holds non-numeric text {raw.iloc[i]!r} at {_row(i)}. {clean_csv_hint(src)}"
        )
    df[col] = num.astype(np.float64)


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
    """Read one OHLCV CSV, resolve column aliases and validate it.

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
        DataFrame with ``timestamps`` (datetime64[ns]), ``symbol`` (when a long file), the six
        FEATURES (float64; missing volume/amount filled per the spec) and ``member`` (bool) when given.

    Raises:
        DataValidationError: missing file or column, non-numeric text, NaN, unparseable,
            unsorted or duplicated timestamps, too few rows; naming file, column and first bad row.
    """
    src = name or (str(path_or_buffer) if isinstance(path_or_buffer, (str, Path)) else "<uploaded csv>")
    if isinstance(path_or_buffer, (str, Path)) and not Path(path_or_buffer).is_file():
        raise DataValidationError(f"{src}: file not found. Check the path (data.source.path=...).")
    try:
        df = pd.read_csv(path_or_buffer)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataValidationError(f"{src}: not a readable CSV file ({err}). {clean_csv_hint(src)}") from err
    df.columns = [str(c).strip().lower() for c in df.columns]
    df = df.rename(columns={k: v for k, v in COLUMN_ALIASES.items() if k in df.columns and v not in df.columns})
    columns = list(df.columns)

    tcol = _pick(columns, time_column, TIME_ALIASES, "time", src)
    if tcol is None:
        raise DataValidationError(
            f"{src}: no timestamp column; expected one of {list(TIME_ALIASES)}, found {columns}. "
            "Rename it or pass time_column=..."
        )
    scol = _pick(columns, symbol_column, SYMBOL_ALIASES, "symbol", src)
    mcol = member_column.strip().lower() if member_column else None
    if mcol is None:
        candidates = [c for c in columns if c == "member" or c.startswith("in_")]
        mcol = candidates[0] if len(candidates) == 1 else None
    elif mcol not in columns:
        raise DataValidationError(f"{src}: the member column '{member_column}' is missing; columns found: {columns}.")

    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if missing:
        raise DataValidationError(
            f"{src}: missing column(s) {missing}; found {columns}. Kronos needs open, high, low, close "
            "(volume and amount are optional)."
        )
    feats = [c for c in FEATURES if c in columns]
    for c in feats:
        _coerce_numeric(df, c, src)

    nan_rows = df[feats].isna().to_numpy()
    if nan_rows.any():
        if on_nan == "raise":
            i, j = (int(v[0]) for v in np.nonzero(nan_rows))
            raise DataValidationError(
                f"{src}: column '{feats[j]}' has a missing value (NaN) at {_row(i)} "
                f"({int(nan_rows.any(axis=1).sum())} such rows). {clean_csv_hint(src)}"
            )
        df = df.loc[~nan_rows.any(axis=1)]
    file_row = df.index.to_numpy()  # messages name rows of the file, also after dropping NaN rows

    stamps = pd.to_datetime(df[tcol], errors="coerce", format="mixed")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(
            f"{src}: column '{tcol}' has an unparseable timestamp {df[tcol].iloc[i]!r} at {_row(file_row[i])}. "
            f"{clean_csv_hint(src)}"
        )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame({"timestamps": stamps.astype("datetime64[ns]").to_numpy()})
    if scol is not None:
        out["symbol"] = df[scol].astype(str).str.strip().to_numpy()
    for c in feats:
        out[c] = df[c].to_numpy()
    out = fill_volume_amount(out)
    if mcol is not None:
        out["member"] = df[mcol].fillna(0).astype(bool).to_numpy()

    step = (out.groupby("symbol", sort=False)["timestamps"].diff() if scol else out["timestamps"].diff())
    bad = np.flatnonzero((step <= pd.Timedelta(0)).to_numpy())
    if len(bad):
        i = int(bad[0])
        what = "a duplicated timestamp" if step.iloc[i] == pd.Timedelta(0) else "an unsorted timestamp"
        where = f" for symbol {out['symbol'].iloc[i]!r}" if scol else ""
        raise DataValidationError(
            f"{src}: column '{tcol}' has {what} {out['timestamps'].iloc[i]}{where} at {_row(file_row[i])} "
            "(timestamps must increase strictly). "
            f"{clean_csv_hint(src)}"
        )
    counts = out.groupby("symbol", sort=False).size() if scol else pd.Series({src: len(out)})
    if len(out) == 0 or counts.min() < min_rows:
        who = counts.idxmin() if len(out) else src
        n = int(counts.min()) if len(out) else 0
        raise DataValidationError(
            f"{src}: series {who!r} has {n} rows, fewer than the {min_rows} one window needs "
            "(lookback + horizon). Use more history or a shorter lookback/horizon."
        )
    return out[[c for c in ("timestamps", "symbol", *FEATURES, "member") if c in out.columns]]


class CSVSource:
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
        """{symbol: validated DataFrame} in file / first-appearance order."""
        if self.path.is_dir():
            files = sorted(self.path.glob(self.glob))
            if not files:
                raise DataValidationError(f"{self.path}: no files match '{self.glob}'. Check data.source.path/glob.")
            out: dict[str, pd.DataFrame] = {}
            for f in files:
                df = self._read(f)
                if "symbol" in df.columns:
                    out.update({str(s): g.drop(columns="symbol") for s, g in df.groupby("symbol", sort=False)})
                else:
                    out[f.stem] = df
            return out
        df = self._read(self.path)
        if "symbol" not in df.columns:
            return {self.path.stem: df}
        return {str(s): g.drop(columns="symbol").reset_index(drop=True) for s, g in df.groupby("symbol", sort=False)}

    def load(self) -> Panel:
        """All series as a Panel (origin = the path, for messages)."""
        return Panel.from_frames(self.frames(), origin=str(self.path))
