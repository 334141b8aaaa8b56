"""MLflow tracking (a local store under the experiment by default) and report artifacts for any tracker.

``logger=mlflow`` builds Lightning's ``MLFlowLogger`` through :func:`make_mlflow_logger`; stage runners
that write a report directory (backtest, evaluate) hand it to :func:`log_report_artifacts`, which attaches
it to every tracker that stores files (MLflow, Comet). CSV and TensorBoard loggers already write locally
and are skipped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Mapping

from lightning.pytorch.loggers import CometLogger, Logger, MLFlowLogger

log = logging.getLogger(__name__)

_FILE_SCHEME = "file:"


def make_mlflow_logger(
    experiment_name: str,
    run_name: str,
    tracking_uri: str,
    tags: Mapping[str, str] | None = None,
    log_model: bool = False,
) -> MLFlowLogger:
    """Lightning's MLFlowLogger for one stage's run.

    Args:
        experiment_name: MLflow experiment (the Kronos experiment's ``name``).
        run_name: the run (the stage, e.g. ``tokenizer``).
        tracking_uri: ``file:<dir>`` for a local store (made absolute, so every stage and every working
            directory of one experiment writes the same store), or any MLflow URI (``sqlite:///...``,
            ``http://...``).
        tags: extra run tags.
        log_model: let Lightning upload checkpoints as artifacts (off: exports are already on disk).
    """
    if tracking_uri.startswith(_FILE_SCHEME) and not tracking_uri.startswith("file://"):
        store = Path(tracking_uri[len(_FILE_SCHEME):]).expanduser().resolve()
        store.mkdir(parents=True, exist_ok=True)
        tracking_uri = store.as_uri()
    if tracking_uri.startswith(_FILE_SCHEME):
        # MLflow 3 keeps the filesystem store in maintenance mode and refuses it unless this opt-in is
        # set; a local directory needs no server or database (a sqlite store takes ~10 s to create),
        # so the default keeps it. An explicit setting in the environment wins.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name,
        tracking_uri=tracking_uri,
        tags=dict(tags) if tags else None,
        log_model=log_model,
    )


def log_report_artifacts(loggers: Iterable[Logger], directory: str | os.PathLike, artifact_path: str | None = None) -> list[str]:
    """Attach every file under ``directory`` (a backtest or evaluate report) to the trackers among ``loggers``.

    MLflow runs get the files under ``artifact_path`` (default: the directory's name, e.g. ``backtest``);
    Comet experiments get them as an asset folder. The report is already on disk, so a tracker that fails
    to take it is logged as a warning and does not stop the stage.

    Returns:
        The class names of the loggers that received the files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"report directory {directory} does not exist: write the report before logging it")
    target = artifact_path or directory.name
    received: list[str] = []
    for lg in loggers:
        try:
            if isinstance(lg, MLFlowLogger):
                lg.experiment.log_artifacts(lg.run_id, str(directory), artifact_path=target)
            elif isinstance(lg, CometLogger):
                lg.experiment.log_asset_folder(str(directory), log_file_name=True, recursive=True)
            else:
                continue
        except Exception as exc:  # noqa: BLE001 - a tracker outage must not fail a finished report
            log.warning("could not log %s to %s: %s: %s", directory, type(lg).__name__, type(exc).__name__, exc)
            continue
        received.append(type(lg).__name__)
    return received
