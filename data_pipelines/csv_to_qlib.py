"""Command line: OHLCV CSV (a file, a folder of per-symbol files, or one long file) -> Qlib provider.

A thin wrapper over :mod:`kronos.data.qlib_provider` (layout, safety rules and the builders live
there; ``build_provider``, ``build_provider_from_panel`` and ``qlib_symbol`` are re-exported here
for existing callers). ``--out`` must be a new or empty directory, or an existing provider with
``--overwrite``; ``--freq`` must match the data's bar frequency (``day``, ``60min``, ``5min``, ...).

CLI: ``python -m data_pipelines.csv_to_qlib --csv PATH --out DIR [--overwrite] [--freq day]
[--symbol-column C] [--time-column C] [--market M] [--nan raise|drop]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from kronos.data.csv_source import CSVSource
from kronos.data.qlib_provider import (  # noqa: F401  (re-exported)
    FIELDS,
    build_provider,
    build_provider_from_panel,
    check_market,
    check_output_dir,
    qlib_symbol,
)
from kronos.errors import KronosUserError


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI entry: CSV -> Qlib provider directory; raises a KronosUserError on bad input."""
    ap = argparse.ArgumentParser(prog="python -m data_pipelines.csv_to_qlib", description=__doc__.split("\n")[0])
    ap.add_argument("--csv", required=True, help="a CSV file, a folder of per-symbol CSVs, or a long file")
    ap.add_argument("--out", required=True, help="provider directory to write (new, empty, or a provider with --overwrite)")
    ap.add_argument("--overwrite", action="store_true", help="replace the Qlib provider already in --out")
    ap.add_argument("--symbol-column", default=None)
    ap.add_argument("--time-column", default=None)
    ap.add_argument("--glob", default="*.csv")
    ap.add_argument("--market", default="all", help="instruments/<market>.txt to write beside all.txt")
    ap.add_argument("--freq", default="day", help="calendar frequency matching the data: day, 60min, 5min, 1min, ...")
    ap.add_argument("--nan", choices=("raise", "drop"), default="raise", help="rows with missing values")
    args = ap.parse_args(argv)
    check_market(args.market)  # a path in disguise (../x) is refused before anything is read or written
    check_output_dir(args.out, args.overwrite)  # before reading the data: refuse a bad --out at once
    source = CSVSource(args.csv, args.time_column, args.symbol_column, args.glob, on_nan=args.nan)
    out = build_provider(source.frames(), args.out, freq=args.freq, market=args.market, overwrite=args.overwrite)
    print(f"wrote Qlib provider {out}: qlib.init(provider_uri='{out}', region='cn')")
    return out


if __name__ == "__main__":
    from kronos.interrupts import stop_cleanly

    try:
        with stop_cleanly("csv_to_qlib"):  # Ctrl-C / SIGTERM / full disk: one line, the old provider intact
            main()
    except KronosUserError as err:  # bad input: one line, exit status 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only or full output directory: one line, not a traceback
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
