"""Repair an OHLCV CSV so that ``kronos.data.csv_source.read_ohlcv_csv`` accepts it.

Coerces numeric text (thousands separators, stray spaces) where possible, drops rows whose
timestamp cannot be parsed, drops or forward-fills (per symbol) rows with missing values, sorts
by (symbol,) timestamp and keeps the last of duplicated timestamps. Reports what it changed
(printed and returned) and writes the result under a temporary name, then renames it. The input
is never overwritten unless ``--in-place``.

CLI: ``python -m data_pipelines.clean_csv IN --out OUT [--nan drop|ffill] [--in-place]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from kronos.data.csv_source import COLUMN_ALIASES, SYMBOL_ALIASES, TIME_ALIASES
from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES


def _find(columns: Sequence[str], wanted: str | None, aliases: Sequence[str]) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    if wanted is not None:
        if wanted.strip().lower() not in lower:
            raise DataValidationError(f"column '{wanted}' not found; columns: {list(columns)}")
        return lower[wanted.strip().lower()]
    return next((lower[a] for a in aliases if a in lower), None)


def _write_atomic(df: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_csv(
    path: str | Path,
    out: str | Path | None = None,
    nan: Literal["drop", "ffill"] = "drop",
    in_place: bool = False,
    time_column: str | None = None,
    symbol_column: str | None = None,
    verbose: bool = True,
) -> dict[str, object]:
    """Clean ``path`` into ``out`` (or into ``path`` itself with ``in_place``).

    Returns:
        The report: rows_in, rows_out, text_cells_coerced, unparseable_cells, bad_timestamps_dropped,
        nan_rows_dropped, nan_cells_filled, rows_reordered, duplicates_removed, output.
    """
    src = Path(path)
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
    if nan not in ("drop", "ffill"):
        raise DataValidationError(f"clean_csv: --nan must be 'drop' or 'ffill', got {nan!r}")

    df = pd.read_csv(src, dtype=str, keep_default_na=True)
    report: dict[str, object] = {"input": str(src), "rows_in": len(df)}
    tcol = _find(df.columns, time_column, TIME_ALIASES)
    if tcol is None:
        raise DataValidationError(f"{src}: no timestamp column; expected one of {list(TIME_ALIASES)}, found {list(df.columns)}.")
    scol = _find(df.columns, symbol_column, SYMBOL_ALIASES)
    lower = {c.strip().lower(): c for c in df.columns}
    names = {**{f: f for f in FEATURES}, **COLUMN_ALIASES}
    feat_cols = [lower[k] for k in names if k in lower]

    coerced = unparseable = 0
    for c in feat_cols:
        text = df[c].str.strip()
        num = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        plain = pd.to_numeric(text, errors="coerce")
        coerced += int((num.notna() & plain.isna()).sum())
        unparseable += int((num.isna() & text.notna() & (text != "")).sum())
        df[c] = num
    report["text_cells_coerced"] = coerced
    report["unparseable_cells"] = unparseable

    stamps = pd.to_datetime(df[tcol].str.strip(), errors="coerce", format="mixed")
    bad_ts = stamps.isna().to_numpy()
    report["bad_timestamps_dropped"] = int(bad_ts.sum())
    df = df.loc[~bad_ts].copy()
    df[tcol] = stamps[~bad_ts]

    df["__row"] = np.arange(len(df))
    keys = [scol, tcol] if scol else [tcol]
    df = df.sort_values(keys, kind="stable")
    report["rows_reordered"] = int((df["__row"].to_numpy() != np.arange(len(df))).sum())
    before = len(df)
    df = df.drop_duplicates(subset=keys, keep="last")
    report["duplicates_removed"] = before - len(df)

    missing = df[feat_cols].isna()
    if nan == "ffill":
        filled = df.groupby(scol, sort=False)[feat_cols].ffill() if scol else df[feat_cols].ffill()
        report["nan_cells_filled"] = int((missing & filled.notna()).sum().sum())
        df[feat_cols] = filled
        missing = df[feat_cols].isna()
    else:
        report["nan_cells_filled"] = 0
    nan_rows = missing.any(axis=1).to_numpy()
    report["nan_rows_dropped"] = int(nan_rows.sum())
    df = df.loc[~nan_rows].drop(columns="__row")
    report["rows_out"] = len(df)
    report["output"] = str(dst)
    _write_atomic(df, dst)
    if verbose:
        print(json.dumps(report, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """CLI entry point."""
    ap = argparse.ArgumentParser(prog="python -m data_pipelines.clean_csv", description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("--out", default=None, help="where to write the cleaned CSV")
    ap.add_argument("--nan", choices=("drop", "ffill"), default="drop", help="rows with missing values")
    ap.add_argument("--in-place", action="store_true", help="overwrite the input")
    ap.add_argument("--time-column", default=None)
    ap.add_argument("--symbol-column", default=None)
    args = ap.parse_args(argv)
    return clean_csv(args.input, args.out, args.nan, args.in_place, args.time_column, args.symbol_column)


if __name__ == "__main__":
    try:
        main()
    except DataValidationError as err:
        raise SystemExit(f"error: {err}") from None
