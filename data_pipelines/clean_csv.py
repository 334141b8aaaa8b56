"""Command line: repair an OHLCV CSV so that training, the web UI and the CLI accept it.

A thin wrapper over :func:`kronos.data.csv_cleaning.clean_csv` (what is repaired and the safety
rules are documented there; ``clean_csv`` is re-exported here for existing callers).

CLI: ``python -m data_pipelines.clean_csv IN --out OUT [--nan drop|ffill] [--in-place]
[--time-column C] [--symbol-column C] [--allow-mass-drop]``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from kronos.data.csv_cleaning import MAX_DROPPED_SHARE, MAX_DUPLICATE_SHARE, clean_csv
from kronos.errors import KronosUserError

__all__ = ["clean_csv", "main"]


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    """CLI entry point; raises a KronosUserError on bad input (one line, exit 2, under ``python -m``)."""
    ap = argparse.ArgumentParser(prog="python -m data_pipelines.clean_csv", description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("--out", default=None, help="where to write the cleaned CSV")
    ap.add_argument("--nan", choices=("drop", "ffill"), default="drop", help="rows with missing values")
    ap.add_argument("--in-place", action="store_true", help="overwrite the input (a symlink's target)")
    ap.add_argument("--time-column", default=None)
    ap.add_argument("--symbol-column", default=None, help="the symbol column of a long multi-symbol file")
    ap.add_argument("--allow-mass-drop", action="store_true",
                    help=f"allow dropping more than {MAX_DUPLICATE_SHARE * 100:.0f}%% of the rows as duplicated timestamps, "
                         f"or more than {MAX_DROPPED_SHARE * 100:.0f}%% for missing or invalid values (a result "
                         f"with no rows is never written)")
    args = ap.parse_args(argv)
    return clean_csv(args.input, args.out, args.nan, args.in_place, args.time_column, args.symbol_column,
                     allow_mass_drop=args.allow_mass_drop)


if __name__ == "__main__":
    try:
        main()
    except KronosUserError as err:  # bad input: one line, exit status 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a read-only directory, a full disk: one line, not a traceback
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
