"""Command line: download Qlib's public daily dataset into a provider directory.

A thin wrapper over :func:`kronos.data.qlib_download.download` (re-exported here with
``DownloadError`` for existing callers).

CLI: ``python -m data_pipelines.download_qlib [--target DIR] [--region cn|us] [--interval 1d]
[--name qlib_data|qlib_data_simple] [--replace] [--skip-existing]``.
Without network access it stops with one message saying what failed and how to build a provider
from your own CSV files instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from kronos.data.qlib_download import DownloadError, download
from kronos.data.qlib_source import DEFAULT_PROVIDER as DEFAULT_TARGET
from kronos.errors import KronosUserError

__all__ = ["DEFAULT_TARGET", "DownloadError", "download", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; returns the process exit code (1 with a one-line message when the download fails,
    2 when the target directory is refused)."""
    ap = argparse.ArgumentParser(prog="python -m data_pipelines.download_qlib", description=__doc__.split("\n")[0])
    ap.add_argument("--target", default=DEFAULT_TARGET, help=f"provider directory (default {DEFAULT_TARGET})")
    ap.add_argument("--region", default="cn", choices=["cn", "us"])
    ap.add_argument("--interval", default="1d", help="bar frequency: 1d (or 1min for cn)")
    ap.add_argument("--name", default="qlib_data", choices=["qlib_data", "qlib_data_simple"])
    ap.add_argument("--replace", action="store_true", help="delete an existing provider in --target first")
    ap.add_argument("--skip-existing", action="store_true", help="do nothing when --target already holds data")
    args = ap.parse_args(argv)
    try:
        path = download(args.target, args.region, args.interval, args.name, args.replace, args.skip_existing)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KronosUserError as err:  # bad input: one line, exit status 2
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Qlib provider ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
