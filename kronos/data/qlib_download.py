"""Download Qlib's public dataset into a provider directory (wraps Qlib's own downloader).

Without network access it stops with one message saying what failed and how to build a provider
from your own CSV files instead. A non-empty target that is not a Qlib provider is refused, since
Qlib would unpack (or, with ``replace``, delete) into it.
"""

from __future__ import annotations

from pathlib import Path

from kronos.data.errors import DataValidationError
from kronos.data.qlib_provider import is_qlib_provider
from kronos.data.qlib_source import DEFAULT_PROVIDER


class DownloadError(RuntimeError):
    """The dataset could not be fetched; the message names the cause and the offline alternative."""


def download(target: str | Path = DEFAULT_PROVIDER, region: str = "cn", interval: str = "1d",
             name: str = "qlib_data", replace: bool = False, skip_existing: bool = False) -> Path:
    """Fetch Qlib's dataset into ``target`` with ``qlib.tests.data.GetData().qlib_data``.

    Args:
        target: provider directory to write: missing, empty, or an existing provider.
        region: ``cn`` or ``us``.
        interval: bar frequency (``1d``; ``1min`` for cn).
        name: ``qlib_data`` (full) or ``qlib_data_simple``.
        replace: delete an existing provider in ``target`` first (Qlib asks for confirmation).
        skip_existing: do nothing when ``target`` already holds a provider.

    Returns:
        The provider directory.

    Raises:
        DataValidationError: ``target`` holds other files (it is left untouched).
        DownloadError: the download failed (no network, server error, or a bad archive).
    """
    from qlib.tests.data import GetData

    target_dir = Path(target).expanduser()
    if target_dir.is_dir() and any(target_dir.iterdir()) and not is_qlib_provider(target_dir):
        raise DataValidationError(
            f"{target_dir}: the directory is not empty and is not a Qlib provider; the download would unpack "
            "into it. Give a new or empty directory as --target."
        )
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
