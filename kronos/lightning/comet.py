"""Comet logging that never crashes a run: online with an API key, offline (a local archive) without."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.loggers import CometLogger

log = logging.getLogger(__name__)


def make_comet_logger(
    api_key: str | None,
    workspace: str | None,
    project: str,
    experiment_name: str,
    offline_directory: str,
) -> CometLogger:
    """A Lightning CometLogger; offline, writing its archive to ``offline_directory``, when no key is set."""
    online = bool(api_key)
    if not online:
        log.info("COMET_API_KEY is not set: Comet runs offline, archive in %s", offline_directory)
    Path(offline_directory).mkdir(parents=True, exist_ok=True)
    return CometLogger(
        api_key=api_key or None,
        workspace=workspace or None,
        project=project,
        name=experiment_name,
        online=online,
        offline_directory=str(offline_directory),
    )
