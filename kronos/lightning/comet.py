"""Comet logging that never crashes a run: online with an API key, offline (a local archive) without."""

from __future__ import annotations

import logging
from pathlib import Path

from lightning.pytorch.loggers import CometLogger

log = logging.getLogger(__name__)


class _OfflineCapableCometLogger(CometLogger):
    """CometLogger whose keyless runs are real offline experiments.

    Lightning's own ``online=False`` disables Comet entirely (nothing is recorded); here a run without an
    API key is created with ``comet_ml.start(online=False)``, which writes a local archive instead.
    """

    def _create_experiment(self) -> None:
        if not self._api_key:
            self._online = False
        super()._create_experiment()


def make_comet_logger(
    api_key: str | None,
    workspace: str | None,
    project: str,
    experiment_name: str,
    offline_directory: str,
) -> CometLogger:
    """A Lightning CometLogger: online with ``api_key``, else offline writing its archive to ``offline_directory``."""
    if not api_key:
        log.info("COMET_API_KEY is not set: Comet runs offline, archive in %s", offline_directory)
    Path(offline_directory).mkdir(parents=True, exist_ok=True)
    return _OfflineCapableCometLogger(
        api_key=api_key or None,
        workspace=workspace or None,
        project=project,
        name=experiment_name,
        offline_directory=str(offline_directory),
    )


def end_comet_runs(loggers: list, artifact_dir: str | Path | None = None) -> None:
    """Attach ``artifact_dir`` (an exported model or a report) to each Comet run, then end it.

    Lightning's CometLogger only flushes at the end of fit; ending the experiment is what uploads an
    online run's last data or writes an offline run's archive.
    """
    for lg in loggers:
        if not isinstance(lg, CometLogger) or lg._experiment is None:
            continue
        if artifact_dir is not None and Path(artifact_dir).is_dir():
            lg.experiment.log_model(Path(artifact_dir).name, str(artifact_dir))
        lg.experiment.end()
