"""The stages of ``python -m kronos.train``, one record each: the only list of them.

``kronos.train`` checks ``stage.run`` against it, validates each stage's settings group and the weights it
needs before anything is trained, and dispatches to its runner; ``kronos.config_checks`` reads which
config keys apply; ``kronos.stages.common`` which stages train. Runners and settings types are named as
``module:attribute`` and imported only when used (the backtest pulls in qlib, evaluate its tasks), so this
module is light enough for every layer above :mod:`kronos.experiment` to read.

To add a stage: one :class:`Stage` record here, its runner in ``kronos/stages/``, a ``conf/stage/<name>.yaml``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from kronos.experiment import ModelKind


@dataclass(frozen=True)
class Stage:
    """One stage of an experiment.

    Attributes:
        name: the stage's name in ``stage.run`` and its directory under ``outputs/<name>/``.
        runner: ``module:function`` that runs it. A training stage's runner is
            ``(cfg, stage, datamodule, experiment, produced) -> (export_dir | None, trainer)``; any other's is
            ``(cfg, datamodule, experiment, produced) -> metrics`` and runs on rank zero alone.
        trains: it fits a model with Lightning and exports it (its name is then the model kind it exports).
        needs: the model kinds whose weights it consumes (an earlier stage of the same command counts).
        needs_checked: a missing weight stops the command before training (evaluate may score
            ``evaluate.models`` alone, so its needs are not checked up front).
        settings: the config group it reads and ``module:Class`` of the settings type validating it (built with
            ``Class.from_config(cfg[group])`` before any training); None when the group is checked elsewhere.
        headline: ``module:function`` turning what the runner returned (a training stage: its export directory)
            into the lines that end the log of ``python -m kronos.train``.
    """

    name: str
    runner: str
    trains: bool = False
    needs: tuple[ModelKind, ...] = ()
    needs_checked: bool = True
    settings: tuple[str, str] | None = None
    headline: str = "kronos.stages.fit:headline"

    def run(self, *args: Any) -> Any:
        """Call the runner (imported now) with ``args``."""
        return _attribute(self.runner)(*args)

    def headline_lines(self, result: Any) -> list[str]:
        """The stage's headline: what the runner returned, as a few lines of text."""
        return list(_attribute(self.headline)(result))

    def check_settings(self, cfg: Any) -> Any:
        """The stage's settings built from ``cfg[group]`` (validating it); None when it has no settings group."""
        if self.settings is None:
            return None
        group, type_name = self.settings
        return _attribute(type_name).from_config(cfg[group])


def _attribute(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("tokenizer", "kronos.stages.fit:fit_stage", trains=True),
    Stage("predictor", "kronos.stages.fit:fit_stage", trains=True, needs=("tokenizer",)),
    Stage("backtest", "kronos.stages.backtest:backtest_stage", needs=("tokenizer", "predictor"),
          settings=("backtest", "kronos.backtest.settings:BacktestSettings"), headline="kronos.stages.backtest:headline"),
    Stage("evaluate", "kronos.stages.evaluate:evaluate_stage", needs=("tokenizer", "predictor"), needs_checked=False,
          settings=("evaluate", "kronos.evaluate.settings:EvaluateSettings"), headline="kronos.stages.evaluate:headline"),
)}
TRAINING_STAGES = tuple(name for name, stage in STAGES.items() if stage.trains)
