"""Training progress readable in a log: Lightning's bar on a terminal, plain lines anywhere else.

A progress bar redraws itself with carriage returns; written to a file (a job log, CI output, ``> run.log``) it
leaves thousands of ``\\r`` frames on a few physical lines, so ``tail`` shows a smear of bars instead of what
happened. :func:`progress_bar` (``conf/callbacks/progress.yaml``) gives the TQDM bar when stdout is a terminal
and :class:`LineProgress` otherwise: one log line every ``every_percent`` % of the training steps or every
``every_seconds`` seconds, whichever comes first, one after each validation, one at the end.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar

log = logging.getLogger("kronos.progress")


def progress_bar(refresh_rate: int = 10, every_percent: float = 5.0, every_seconds: float = 30.0,
                 stage: str | None = None) -> ProgressBar:
    """The TQDM bar (redrawn every ``refresh_rate`` steps) on a terminal, else :class:`LineProgress`."""
    if sys.stdout.isatty():
        return TQDMProgressBar(refresh_rate=refresh_rate)
    return LineProgress(every_percent=every_percent, every_seconds=every_seconds, stage=stage)


class LineProgress(ProgressBar):
    """Progress as log lines without carriage returns (rank zero only).

    Args:
        every_percent: a line each time this share of the training steps (``trainer.max_steps``, else
            Lightning's estimate) has passed.
        every_seconds: ... or this much time, whichever comes first (the only rule when the total is unknown).
        stage: the name the lines start with (``tokenizer``, ``predictor``); None: ``train``.
    """

    def __init__(self, every_percent: float = 5.0, every_seconds: float = 30.0, stage: str | None = None) -> None:
        super().__init__()
        if not every_percent > 0 or not every_seconds > 0:
            raise ValueError("every_percent and every_seconds must be positive")
        self.every_percent, self.every_seconds = float(every_percent), float(every_seconds)
        self.stage = stage or "train"
        self._enabled = True
        self._start = self._last_time = 0.0
        self._last_step = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _active(self, trainer: pl.Trainer) -> bool:
        return self._enabled and trainer.is_global_zero

    @staticmethod
    def _total(trainer: pl.Trainer) -> float:
        """Training steps this run takes (inf when unknown)."""
        if trainer.max_steps and trainer.max_steps > 0:
            return float(trainer.max_steps)
        try:
            return float(trainer.estimated_stepping_batches)
        except Exception:  # an iterable dataset without a length: no share to report
            return math.inf

    def _metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
        shown = []
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key == "v_num":
                continue
            shown.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        return " | ".join(shown)

    def _line(self, trainer: pl.Trainer, pl_module: pl.LightningModule, what: str = "") -> None:
        step, total = trainer.global_step, self._total(trainer)
        share = f"/{int(total)} ({100 * step / total:.0f}%)" if math.isfinite(total) and total > 0 else ""
        metrics = self._metrics(trainer, pl_module)
        parts = [f"{self.stage}{what}: step {step}{share}, epoch {trainer.current_epoch}",
                 f"{time.monotonic() - self._start:.0f}s", *([metrics] if metrics else [])]
        log.info("%s", " | ".join(parts))
        self._last_time, self._last_step = time.monotonic(), step

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last_time = time.monotonic()
        self._last_step = trainer.global_step
        if self._active(trainer):
            total = self._total(trainer)
            log.info("%s: training %s steps", self.stage, int(total) if math.isfinite(total) else "an unknown number of")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._active(trainer) or trainer.global_step == self._last_step:
            return
        total = self._total(trainer)
        due_share = math.isfinite(total) and total > 0 and \
            100 * (trainer.global_step - self._last_step) / total >= self.every_percent
        if due_share or time.monotonic() - self._last_time >= self.every_seconds:
            self._line(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active(trainer) and not trainer.sanity_checking:
            self._line(trainer, pl_module, " validated")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._active(trainer):
            self._line(trainer, pl_module, " finished")
