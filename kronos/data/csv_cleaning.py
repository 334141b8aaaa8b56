"""Repair an OHLCV CSV so that ``kronos.data.csv_source.read_ohlcv_csv`` accepts it.

Coerces numeric text (thousands separators, stray spaces) where possible, drops rows whose
timestamp cannot be parsed, treats infinite values as missing, drops or forward-fills (per symbol)
rows with missing values, drops rows with non-positive prices or high < low, converts timestamps
with mixed UTC offsets to UTC, sorts by (symbol,) timestamp and keeps the last of duplicated
timestamps. Reports what it changed and writes the result under a temporary name, then renames
it (through a symlink to its target). The input is never overwritten unless ``in_place``.

It refuses to drop more than ``MAX_DUPLICATE_SHARE`` of the rows (and more than
``MASS_DROP_MIN_ROWS``) as duplicated timestamps unless
``allow_mass_drop``: that almost always means a long multi-symbol file read without its symbol
column, and the message names the column that looks like one. Likewise it refuses to drop more than
``MAX_DROPPED_SHARE`` of the rows for missing, unparseable or invalid values unless ``allow_mass_drop``,
and it never writes a result with no rows (nothing is written in either case, ``--in-place`` included).
An optional column (volume, amount, per-asset volume) that is empty in every row is dropped as a column
(reported in ``empty_columns_dropped``), never a reason to drop rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from kronos.atomic import WriteTargetError, atomic_path, check_write_target
from kronos.data.csv_source import banner_lines, check_header_width
from kronos.data.errors import DataValidationError, quoted
from kronos.data.features import FEATURES, PRICE_COLUMNS
from kronos.data.ohlcv import (COLUMN_ALIASES, SYMBOL_ALIASES, TIME_ALIASES, check_delimiter,
                               local_midnight_dates, per_asset_volume_columns, text_to_datetime)

MAX_DUPLICATE_SHARE = 0.05  # above this share of rows, "duplicates" are a missing --symbol-column
MASS_DROP_MIN_ROWS = 10  # ... and above this count (a few duplicates in a tiny file are just duplicates)
MAX_DROPPED_SHARE = 0.5  # above this share of rows dropped for bad values, the file was misread, not dirty


def _find(columns: Sequence[str], wanted: str | None, aliases: Sequence[str], src: Path) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    if wanted is not None:
        if wanted.strip().lower() not in lower:
            raise DataValidationError(f"{src}: column {quoted(wanted)} not found; columns: {quoted(list(columns))}")
        return lower[wanted.strip().lower()]
    return next((lower[a] for a in aliases if a in lower), None)


def likely_symbol_column(df: pd.DataFrame, time_column: str, exclude: Sequence[str]) -> str | None:
    """The text column that best separates rows sharing a timestamp (a symbol column), or None.

    Candidates are low-cardinality columns repeated across rows (at least 2 and at most half as
    many distinct values as rows; digits count, as in A-share codes); the one that leaves the
    fewest duplicated (column, time) pairs wins.
    """
    best, best_dups = None, None
    for c in df.columns:
        if c in exclude or c == time_column:
            continue
        distinct = df[c].nunique(dropna=True)
        if not 2 <= distinct <= len(df) // 2:
            continue
        dups = int(df.duplicated(subset=[c, time_column]).sum())
        if best_dups is None or dups < best_dups:
            best, best_dups = c, dups
    return best


def _check_kept(report: dict[str, object], src: Path, allow_mass_drop: bool) -> None:
    """Refuse (nothing written) a result with no rows, or one that lost most rows to bad values."""
    rows_in, rows_out = int(report["rows_in"]), int(report["rows_out"])
    dropped = {k: int(report[k]) for k in ("bad_timestamps_dropped", "nan_rows_dropped", "invalid_price_rows_dropped")
               if report.get(k)}
    why = ", ".join(f"{n:,} {k.removesuffix('_dropped').replace('_', ' ')}" for k, n in dropped.items()) or "none"
    if rows_out == 0:
        raise DataValidationError(
            f"{src}: cleaning would leave no rows of {rows_in:,} (dropped: {why}); nothing was written. Check the "
            "column names and the delimiter, or fill the missing values with --nan ffill."
        )
    lost = sum(dropped.values())
    if lost > max(MAX_DROPPED_SHARE * rows_in, MASS_DROP_MIN_ROWS) and not allow_mass_drop:
        raise DataValidationError(
            f"{src}: cleaning would drop {lost:,} of {rows_in:,} rows ({lost / rows_in:.1%}; {why}); nothing was "
            "written. Check the columns, try --nan ffill, or pass --allow-mass-drop if those rows really are bad."
        )


def clean_csv(
    path: str | Path,
    out: str | Path | None = None,
    nan: Literal["drop", "ffill"] = "drop",
    in_place: bool = False,
    time_column: str | None = None,
    symbol_column: str | None = None,
    verbose: bool = True,
    allow_mass_drop: bool = False,
) -> dict[str, object]:
    """Clean ``path`` into ``out`` (or into ``path`` itself with ``in_place``; a symlink's target).

    The steps, in order: check the target, read the text, find the columns (dropping all-empty optional ones),
    coerce numbers, parse timestamps, sort and de-duplicate, drop or fill missing values, drop invalid prices,
    refuse a mass drop, write.

    Returns:
        The report: rows_in, rows_out, text_cells_coerced, unparseable_cells, infinite_cells,
        bad_timestamps_dropped, timestamps_converted_to_utc, nan_rows_dropped, nan_cells_filled,
        invalid_price_rows_dropped, rows_reordered, duplicates_removed, empty_columns_dropped, output.

    Raises:
        DataValidationError: missing input/columns, ``--out`` equal to the input without
            ``in_place``, an output that is not a regular file, no rows left, or a mass drop (duplicates or
            bad values) without ``allow_mass_drop`` (nothing written).
    """
    src = Path(path)
    dst = _target(src, out, in_place, nan)
    df = _read(src)
    report: dict[str, object] = {"input": str(src), "rows_in": len(df)}
    df, cols = _columns(df, src, time_column, symbol_column, report)
    _coerce_numbers(df, cols.features, report)
    df = _parse_timestamps(df, cols.time, report)
    df = _sort_and_deduplicate(df, cols, src, allow_mass_drop, report)
    df = _drop_missing(df, cols, nan, report)
    df = _drop_invalid_prices(df, cols.prices, report)
    report["rows_out"] = len(df)
    _check_kept(report, src, allow_mass_drop)
    report["output"] = str(dst)
    with atomic_path(dst) as tmp:  # through a symlink: its target is replaced, the link kept
        df.to_csv(tmp, index=False)
    if verbose:
        print(json.dumps(report, indent=2))
    return report


@dataclass(frozen=True)
class _Columns:
    """The columns cleaning works on: time, symbol (None: one series), features (prices among them)."""

    time: str
    symbol: str | None
    features: list[str]
    prices: list[str]

    @property
    def keys(self) -> list[str]:
        """What identifies a row: (symbol,) time."""
        return [self.symbol, self.time] if self.symbol else [self.time]


def _target(src: Path, out: str | Path | None, in_place: bool, nan: str) -> Path:
    """Where the cleaned file goes, refusing a missing input, a bad target or a bad ``--nan`` before any reading."""
    if not src.is_file():
        raise DataValidationError(f"{src}: file not found.")
    if in_place:
        dst = src
    elif out is None:
        raise DataValidationError("clean_csv: give --out <cleaned.csv> (or --in-place to overwrite the input).")
    else:
        dst = Path(out)
        if dst.resolve() == src.resolve():
            raise DataValidationError(f"{src}: --out is the input file; pass --in-place to overwrite it.")
    try:
        check_write_target(dst, "--out" if not in_place else "--in-place")
    except WriteTargetError as err:
        raise DataValidationError(str(err)) from None
    if nan not in ("drop", "ffill"):
        raise DataValidationError(f"clean_csv: --nan must be 'drop' or 'ffill', got {quoted(nan)}")
    return dst


def _read(src: Path) -> pd.DataFrame:
    """The file as text cells (banner lines skipped), or one message saying it is not a readable CSV."""
    check_header_width(src, str(src))
    try:
        df = pd.read_csv(src, dtype=str, keep_default_na=True, skiprows=banner_lines(src))
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataValidationError(f"{src}: not a readable CSV file ({quoted(str(err))}); nothing was written.") from None
    check_delimiter(list(df.columns), str(src))
    return df


def _columns(df: pd.DataFrame, src: Path, time_column: str | None, symbol_column: str | None,
             report: dict[str, object]) -> tuple[pd.DataFrame, _Columns]:
    """Find the time, symbol and feature columns; an all-empty optional column is dropped (no reason to drop rows)."""
    tcol = _find(df.columns, time_column, TIME_ALIASES, src)
    if tcol is None:
        raise DataValidationError(f"{src}: no timestamp column; expected one of {list(TIME_ALIASES)}, found {quoted(list(df.columns))}.")
    scol = _find(df.columns, symbol_column, SYMBOL_ALIASES, src)
    lower = {c.strip().lower(): c for c in df.columns}
    names = {**{f: f for f in FEATURES}, **COLUMN_ALIASES}
    feat_cols = [lower[k] for k in names if k in lower] + [lower[k] for k in per_asset_volume_columns(list(lower))]
    price_cols = [lower[k] for k in PRICE_COLUMNS if k in lower]
    optional = [c for c in feat_cols if c not in price_cols]
    empty = [c for c in optional if df[c].isna().all() or (df[c].str.strip().fillna("") == "").all()]
    report["empty_columns_dropped"] = empty
    return df.drop(columns=empty), _Columns(tcol, scol, [c for c in feat_cols if c not in empty], price_cols)


def _coerce_numbers(df: pd.DataFrame, feat_cols: list[str], report: dict[str, object]) -> None:
    """Feature text to numbers in place (thousands separators, spaces); infinite values become missing."""
    coerced = unparseable = infinite = 0
    for c in feat_cols:
        text = df[c].str.strip()
        num = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        plain = pd.to_numeric(text, errors="coerce")
        coerced += int((num.notna() & plain.isna()).sum())
        unparseable += int((num.isna() & text.notna() & (text != "")).sum())
        inf = np.isinf(num.to_numpy(dtype=np.float64))
        infinite += int(inf.sum())
        df[c] = num.mask(inf)  # an infinite value is as unusable as a missing one
    report["text_cells_coerced"] = coerced
    report["unparseable_cells"] = unparseable
    report["infinite_cells"] = infinite


def _parse_timestamps(df: pd.DataFrame, tcol: str, report: dict[str, object]) -> pd.DataFrame:
    """Timestamps parsed (mixed UTC offsets converted to UTC); rows whose stamp cannot be read dropped."""
    text = df[tcol].str.strip()
    dates = local_midnight_dates(text)
    try:
        stamps = text_to_datetime(text) if dates is None else dates  # local-midnight daily bars keep their date
        report["timestamps_converted_to_utc"] = False
    except ValueError:  # mixed UTC offsets: one consistent clock
        stamps = text_to_datetime(text, utc=True)
        report["timestamps_converted_to_utc"] = True
    bad_ts = stamps.isna().to_numpy()
    report["bad_timestamps_dropped"] = int(bad_ts.sum())
    df = df.loc[~bad_ts].copy()
    df[tcol] = stamps[~bad_ts]
    return df


def _sort_and_deduplicate(df: pd.DataFrame, cols: _Columns, src: Path, allow_mass_drop: bool,
                          report: dict[str, object]) -> pd.DataFrame:
    """Sort by (symbol,) time and keep the last of duplicated stamps; a mass of duplicates (a missing symbol
    column, most likely) is refused naming the column that looks like one."""
    keys = cols.keys
    duplicates = int(df.duplicated(subset=keys).sum())
    if duplicates > max(MAX_DUPLICATE_SHARE * len(df), MASS_DROP_MIN_ROWS) and not allow_mass_drop:
        guess = None if cols.symbol else likely_symbol_column(df, cols.time, cols.features)
        advice = (f"Column '{guess}' looks like a symbol column ({df[guess].nunique()} distinct values repeated "
                  f"across rows): rerun with --symbol-column {guess}. " if guess else "")
        raise DataValidationError(
            f"{src}: de-duplicating on {keys} would drop {duplicates:,} of {len(df):,} rows "
            f"({duplicates / len(df):.1%}) as duplicated timestamps; nothing was written. {advice}"
            "If those rows really are duplicates, pass --allow-mass-drop."
        )
    order = np.arange(len(df))
    df = df.assign(__row=order).sort_values(keys, kind="stable")
    report["rows_reordered"] = int((df["__row"].to_numpy() != order).sum())
    df = df.drop_duplicates(subset=keys, keep="last").drop(columns="__row")
    report["duplicates_removed"] = duplicates
    return df


def _drop_missing(df: pd.DataFrame, cols: _Columns, nan: str, report: dict[str, object]) -> pd.DataFrame:
    """Forward-fill missing features per symbol (``nan="ffill"``), then drop the rows still missing one."""
    feat_cols = cols.features
    missing = df[feat_cols].isna()
    if nan == "ffill":
        filled = df.groupby(cols.symbol, sort=False)[feat_cols].ffill() if cols.symbol else df[feat_cols].ffill()
        report["nan_cells_filled"] = int((missing & filled.notna()).sum().sum())
        df[feat_cols] = filled
        missing = df[feat_cols].isna()
    else:
        report["nan_cells_filled"] = 0
    nan_rows = missing.any(axis=1).to_numpy()
    report["nan_rows_dropped"] = int(nan_rows.sum())
    return df.loc[~nan_rows]


def _drop_invalid_prices(df: pd.DataFrame, price_cols: list[str], report: dict[str, object]) -> pd.DataFrame:
    """Drop rows with a non-positive price or high < low (when every price column is there)."""
    if len(price_cols) != len(PRICE_COLUMNS):
        return df
    p = df[price_cols].to_numpy(dtype=np.float64)
    invalid = (p <= 0).any(axis=1) | (p[:, 1] < p[:, 2])
    report["invalid_price_rows_dropped"] = int(invalid.sum())
    return df.loc[~invalid]
