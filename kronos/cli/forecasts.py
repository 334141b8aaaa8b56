"""``kronos-forecasts`` (``python -m kronos.forecasts``): list and remove an experiment's forecast stores.

    kronos-forecasts list [--name default] [--output-root outputs] [--json]
    kronos-forecasts remove <key> [<key> ...] [--name default] [--output-root outputs]
    kronos-forecasts remove --all [--name default]

A store is ``<output_root>/<name>/forecasts/<key>/`` (kronos.inference.store); ``list`` prints one line per
store (key, windows, shards, size, last update, split/stride/sample paths of its key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kronos.errors import KronosUserError
from kronos.experiment import Experiment
from kronos.inference.store import list_stores, remove_store


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _describe(row: dict) -> str:
    f = row["fields"]
    sampling = f.get("sampling", {})
    windows = f.get("windows", {})
    return (f"{row['key']}  {row['windows'] if row['windows'] is not None else '?':>8} windows  {row['shards']:>4} "
            f"shards  {_size(row['bytes']):>9}  {row['updated']}  split={windows.get('split')} "
            f"stride={windows.get('stride')} paths={sampling.get('sample_count')} T={sampling.get('T')} "
            f"seed={sampling.get('seed')}" + ("" if row["complete"] else "  (no manifest: interrupted fill)"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kronos-forecasts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="default", help="experiment name (default: default)")
    parser.add_argument("--output-root", default=os.environ.get("KRONOS_OUTPUT_ROOT", "outputs"),
                        help="outputs root (default: $KRONOS_OUTPUT_ROOT or outputs)")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the experiment's forecast stores")
    ls.add_argument("--json", action="store_true", help="print JSON rows (with every key field)")
    rm = sub.add_parser("remove", help="remove forecast stores by key")
    rm.add_argument("keys", nargs="*", help="store keys (directory names) as `list` prints them")
    rm.add_argument("--all", action="store_true", help="remove every store of the experiment")
    return parser


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and act; returns the exit status."""
    args = _parser().parse_args(argv)
    root = Experiment(Path(args.output_root) / args.name).forecasts_dir
    rows = list_stores(root)
    if args.command == "list":
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            print(f"{len(rows)} forecast store(s) in {root}")
            for row in rows:
                print(_describe(row))
        return 0
    keys = [r["key"] for r in rows] if args.all else args.keys
    if not keys:
        raise KronosUserError("kronos-forecasts remove: name at least one key (see `kronos-forecasts list`) or --all")
    known = {r["key"] for r in rows}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise KronosUserError(f"no forecast store {unknown} in {root}: `kronos-forecasts --name {args.name} list` "
                              "shows the keys")
    for key in keys:
        remove_store(root / key)
        print(f"removed {root / key}")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry: a user mistake is one ``error:`` line and exit status 2."""
    try:
        sys.exit(run(argv))
    except KronosUserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
