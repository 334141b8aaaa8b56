"""Write a Qlib provider directory from OHLCV frames, CSV files or a ``Panel``.

Layout written (what pyqlib's file storage reads):
``calendars/<freq>.txt`` (one timestamp a line), ``instruments/all.txt`` and
``instruments/<market>.txt`` (``SYMBOL<TAB>start<TAB>end``; membership spans when a ``member``
column is given), ``features/<symbol lower>/<field>.<freq>.bin`` (little-endian float32; the first
value is the index into the calendar of the symbol's first row, then one value per calendar
step up to its last row, NaN where it has no row). Fields: open, high, low, close, volume,
amount, factor (1.0 when absent: Qlib's exchange needs $factor) and change (close-to-close
return: Qlib's exchange needs $change).

CLI: ``python -m data_pipelines.csv_to_qlib --csv PATH --out DIR [--symbol-column C] [--market M]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from qlib.utils import code_to_fname

from kronos.data.csv_source import CSVSource
from kronos.data.errors import DataValidationError
from kronos.data.features import fill_volume_amount
from kronos.data.panel import Panel

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount", "factor", "change")


def qlib_symbol(name: str) -> str:
    """A symbol Qlib accepts: upper case, letters/digits/underscore only (others become '_')."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name).strip()).upper()


def _format_stamps(stamps: pd.DatetimeIndex, freq: str) -> list[str]:
    fmt = "%Y-%m-%d" if freq == "day" else "%Y-%m-%d %H:%M:%S"
    return list(stamps.strftime(fmt))


def _member_spans(member: np.ndarray, stamps: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Contiguous runs of True in ``member`` [T] as (first, last) timestamps."""
    m = np.concatenate([[False], member.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(stamps[a], stamps[b - 1]) for a, b in zip(edges[::2], edges[1::2])]


def _prepare(name: str, df: pd.DataFrame) -> pd.DataFrame:
    if "timestamps" in df.columns:
        df = df.set_index("timestamps")
    df = df.copy()
    df.index = pd.DatetimeIndex(df.index)
    missing = [c for c in ("open", "high", "low", "close") if c not in df.columns]
    if missing:
        raise DataValidationError(f"symbol {name!r}: missing column(s) {missing}; found {list(df.columns)}.")
    if not df.index.is_monotonic_increasing or df.index.has_duplicates:
        raise DataValidationError(
            f"symbol {name!r}: timestamps are unsorted or duplicated. "
            "Repair the file with: python -m data_pipelines.clean_csv <file> --out <cleaned.csv>"
        )
    df = fill_volume_amount(df)
    if "factor" not in df.columns:
        df["factor"] = 1.0
    if "change" not in df.columns:
        df["change"] = df["close"] / df["close"].shift(1) - 1.0
    return df


def build_provider(
    frames: Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    freq: str = "day",
    market: str = "all",
) -> Path:
    """Write a Qlib provider for ``frames`` ({symbol: DataFrame indexed by datetime}).

    Frames hold open/high/low/close (volume, amount, factor, change optional; a boolean ``member``
    column gives the ``<market>`` spans). The directory is built under a temporary name and
    renamed into place, so a crash never leaves a half-written provider.

    Returns:
        The provider directory (pass it to ``qlib.init(provider_uri=...)``).
    """
    out_dir = Path(out_dir).expanduser().resolve()
    if not frames:
        raise DataValidationError(f"{out_dir}: no series to write.")
    prepared: dict[str, pd.DataFrame] = {}
    for name, df in frames.items():
        sym = qlib_symbol(name)
        if sym in prepared:
            raise DataValidationError(f"symbols {name!r} and another both map to Qlib symbol {sym!r}; rename one.")
        prepared[sym] = _prepare(str(name), df)
    calendar = pd.DatetimeIndex(np.unique(np.concatenate([d.index.to_numpy() for d in prepared.values()])))
    pos = pd.Series(np.arange(len(calendar)), index=calendar)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "calendars").mkdir()
        (tmp / "instruments").mkdir()
        (tmp / "calendars" / f"{freq}.txt").write_text("\n".join(_format_stamps(calendar, freq)) + "\n")
        all_rows, market_rows = [], []
        for sym, df in prepared.items():
            start, end = int(pos[df.index[0]]), int(pos[df.index[-1]])
            span = _format_stamps(pd.DatetimeIndex([df.index[0], df.index[-1]]), freq)
            all_rows.append(f"{sym}\t{span[0]}\t{span[1]}")
            if "member" in df.columns:
                for a, b in _member_spans(df["member"].to_numpy(), df.index):
                    s = _format_stamps(pd.DatetimeIndex([a, b]), freq)
                    market_rows.append(f"{sym}\t{s[0]}\t{s[1]}")
            else:
                market_rows.append(all_rows[-1])
            feat_dir = tmp / "features" / code_to_fname(sym).lower()
            feat_dir.mkdir(parents=True)
            dense = df.reindex(calendar[start : end + 1])
            for field in FIELDS:
                body = dense[field].to_numpy(dtype=np.float32)
                np.concatenate([[np.float32(start)], body]).astype("<f4").tofile(feat_dir / f"{field}.{freq}.bin")
        (tmp / "instruments" / "all.txt").write_text("\n".join(all_rows) + "\n")
        if market.lower() != "all":
            (tmp / "instruments" / f"{market.lower()}.txt").write_text("\n".join(market_rows) + "\n")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def build_provider_from_panel(panel: Panel, out_dir: str | Path, market: str = "all", freq: str = "day") -> Path:
    """Write a Qlib provider for a ``Panel`` (e.g. synthetic data) with ``build_provider``."""
    return build_provider({inst: panel.frame(inst) for inst in panel.instruments}, out_dir, freq=freq, market=market)


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI entry: CSV (file, folder or long file) -> Qlib provider directory."""
    ap = argparse.ArgumentParser(prog="python -m data_pipelines.csv_to_qlib", description=__doc__.split("\n")[0])
    ap.add_argument("--csv", required=True, help="a CSV file, a folder of per-symbol CSVs, or a long file")
    ap.add_argument("--out", required=True, help="provider directory to write")
    ap.add_argument("--symbol-column", default=None)
    ap.add_argument("--time-column", default=None)
    ap.add_argument("--glob", default="*.csv")
    ap.add_argument("--market", default="all", help="instruments/<market>.txt to write beside all.txt")
    ap.add_argument("--freq", default="day", help="calendar frequency name (day, 60min, ...)")
    ap.add_argument("--nan", choices=("raise", "drop"), default="raise", help="rows with missing values")
    args = ap.parse_args(argv)
    source = CSVSource(args.csv, args.time_column, args.symbol_column, args.glob, on_nan=args.nan)
    out = build_provider(source.frames(), args.out, freq=args.freq, market=args.market)
    print(f"wrote Qlib provider {out}: qlib.init(provider_uri='{out}', region='cn')")
    return out


if __name__ == "__main__":
    try:
        main()
    except DataValidationError as err:
        raise SystemExit(f"error: {err}") from None
