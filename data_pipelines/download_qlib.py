"""Download Qlib's public daily dataset into a provider directory (wraps Qlib's own downloader).

CLI: ``python -m data_pipelines.download_qlib [--target DIR] [--region cn|us] [--interval 1d]
[--name qlib_data|qlib_data_simple] [--replace] [--skip-existing]``.
Without network access it stops with one message saying what failed and how to build a provider
from your own CSV files instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_TARGET = "~/.qlib/qlib_data/cn_data"


class DownloadError(RuntimeError):
    """The dataset could not be fetched; the message names the cause and the offline alternative."""


def download(target: str | Path = DEFAULT_TARGET, region: str = "cn", interval: str = "1d",
             name: str = "qlib_data", replace: bool = False, skip_existing: bool = False) -> Path:
    """Fetch Qlib's dataset into ``target`` with ``qlib.tests.data.GetData().qlib_data``.

    Args:
        target: provider directory to write.
        region: ``cn`` or ``us``.
        interval: bar frequency (``1d``; ``1min`` for cn).
        name: ``qlib_data`` (full) or ``qlib_data_simple``.
        replace: delete an existing provider in ``target`` first (Qlib asks for confirmation).
        skip_existing: do nothing when ``target`` already holds a provider.

    Returns:
        The provider directory.

    Raises:
        DownloadError: the download failed (no network, server error, or a bad archive).
    """
    from qlib.tests.data import GetData

    target_dir = Path(target).expanduser()
    try:
        GetData(delete_zip_file=True).qlib_data(name=name, target_dir=str(target_dir), interval=interval,
                                                region=region, delete_old=replace, exists_skip=skip_existing)
    except (OSError, ValueError) as err:  # requests' connection/HTTP errors are OSErrors; bad zips ValueErrors
        raise DownloadError(
            f"could not download Qlib's {region}/{interval} dataset '{name}' into {target_dir}: "
            f"{type(err).__name__}: {err}. Without network access, build a provider from your own CSV files: "
            f"python -m data_pipelines.csv_to_qlib --csv PATH --out {target_dir}"
        ) from err
    return target_dir


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry; returns the process exit code (1 with a one-line message when the download fails)."""
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
    print(f"Qlib provider ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
