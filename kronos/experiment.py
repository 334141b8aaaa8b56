"""One experiment's directory, ``outputs/<name>/``: the only place that spells its layout.

Every stage of an experiment (tokenizer, predictor, backtest, evaluate), the web UI catalog and the
examples find each other's files through :class:`Experiment`; no other module joins these names.

Layout::

    <root>/tokenizer/            export in the published format (config.json, model.safetensors, training_info.json)
    <root>/predictor/            export in the published format
    <root>/checkpoints/<stage>/  Lightning checkpoints (best.ckpt, last.ckpt) for resuming
    <root>/backtest/             metrics.json, signals.csv, plots, report.html
    <root>/evaluate/             metrics.json, per-origin CSV, plots, report.html
    <root>/qlib_provider/        Qlib provider built from CSV/synthetic data for the backtest
    <root>/forecasts/<key>/      forecast stores: decision forecasts kept per key (kronos.inference.store)
    <root>/logs/                 logger output (csv, tensorboard, comet, mlflow)
    <root>/hydra/<stage>/        Hydra's run directory (composed config, job log)
    <root>/sweeps/<key>/         one sweep job: an Experiment of its own whose exports fall back to the parent's
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from kronos.errors import KronosUserError

ModelKind = Literal["tokenizer", "predictor"]
MODEL_KINDS: tuple[ModelKind, ModelKind] = ("tokenizer", "predictor")
_CONFIG_FILE = "config.json"


class WeightsNotFoundError(KronosUserError, RuntimeError):
    """A stage needs a tokenizer/predictor the experiment has not exported and no override names."""


@dataclass(frozen=True)
class Experiment:
    """Paths of one experiment directory.

    Args:
        root: the experiment directory, ``<output_root>/<name>`` (or a sweep job's subdirectory).
        parent: for a sweep job, the experiment it belongs to (exports fall back to the parent's).
    """

    root: Path
    parent: "Experiment | None" = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "Experiment":
        """The experiment of a composed config: ``run_dir`` (``<output_root>/<name>`` or a sweep job)."""
        root = Path(str(cfg["run_dir"]))
        base = Path(str(cfg["output_root"])) / str(cfg["name"])
        if root.resolve() != base.resolve():
            return cls(root, parent=cls(base))
        return cls(root)

    @property
    def name(self) -> str:
        """The experiment's name (the parent's for a sweep job)."""
        return (self.parent or self).root.name

    def export_dir(self, kind: ModelKind) -> Path:
        """Where ``kind``'s export is written: ``<root>/<kind>``."""
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}: expected one of {MODEL_KINDS}")
        return self.root / kind

    @property
    def tokenizer_dir(self) -> Path:
        return self.export_dir("tokenizer")

    @property
    def predictor_dir(self) -> Path:
        return self.export_dir("predictor")

    def has_export(self, kind: ModelKind) -> bool:
        """True when ``<root>/<kind>/config.json`` exists."""
        return (self.export_dir(kind) / _CONFIG_FILE).is_file()

    def find_export(self, kind: ModelKind) -> Path | None:
        """This experiment's export of ``kind``, else (sweep job) the parent's, else None."""
        if self.has_export(kind):
            return self.export_dir(kind)
        return self.parent.find_export(kind) if self.parent is not None else None

    def checkpoint_dir(self, stage: str) -> Path:
        """Lightning checkpoints of a training stage: ``<root>/checkpoints/<stage>``."""
        return self.root / "checkpoints" / stage

    def last_checkpoint(self, stage: str) -> Path:
        """``<root>/checkpoints/<stage>/last.ckpt`` (may not exist)."""
        return self.checkpoint_dir(stage) / "last.ckpt"

    @property
    def backtest_dir(self) -> Path:
        return self.root / "backtest"

    @property
    def evaluate_dir(self) -> Path:
        return self.root / "evaluate"

    @property
    def provider_dir(self) -> Path:
        """A Qlib provider built from the experiment's (CSV/synthetic) data for the backtest."""
        return (self.parent or self).root / "qlib_provider"

    @property
    def forecasts_dir(self) -> Path:
        """Forecast stores, one directory per key (kronos.inference.store); a sweep job shares its parent's."""
        return (self.parent or self).root / "forecasts"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def hydra_dir(self, stage: str) -> Path:
        return self.root / "hydra" / stage

    def sweep(self, key: str) -> "Experiment":
        """A sweep job's own experiment below ``<root>/sweeps/<key>`` (key made directory-safe: never ``.``, ``..``
        or hidden, so a job cannot land in ``sweeps/`` itself or the experiment directory)."""
        safe = re.sub(r"^\.+", "_", re.sub(r"[^A-Za-z0-9_.,=+-]", "_", str(key))) or "job"
        return Experiment(self.root / "sweeps" / safe, parent=self)

    @staticmethod
    def is_export(path: str | Path) -> bool:
        """True when ``path`` is a directory holding a checkpoint's ``config.json``."""
        return (Path(path) / _CONFIG_FILE).is_file()

    @classmethod
    def list(cls, output_root: str | Path) -> list["Experiment"]:
        """Experiments under ``output_root`` that hold both exports, sorted by name."""
        root = Path(output_root)
        if not root.is_dir():
            return []
        found = [cls(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        return [e for e in found if e.has_export("tokenizer") and e.has_export("predictor")]


@dataclass(frozen=True)
class WeightSource:
    """Where a consumer's weights come from, and why: recorded in training_info / metrics JSON.

    Attributes:
        kind: "tokenizer" or "predictor".
        location: a directory or a hub id, as passed to ``from_pretrained``.
        origin: ``trained`` (this command exported it), ``override`` (``weights.<kind>``), ``export``
            (the experiment's export), or ``pretrained`` (``model.<kind>.pretrained``, used unchanged
            because the experiment has no export of its own).
    """

    kind: str
    location: str
    origin: str

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "origin": self.origin}


def resolve_weights(
    kind: ModelKind,
    experiment: Experiment,
    *,
    override: str | None = None,
    pretrained: str | None = None,
    produced: Mapping[str, Path] | None = None,
) -> WeightSource:
    """The one rule for which weights a consumer loads (predictor stage's tokenizer, backtest, evaluate).

    Order: what this command just exported (``produced``); an explicit override (``weights.<kind>``);
    the experiment's export; and only when the experiment has no export of ``kind`` at all,
    ``model.<kind>.pretrained`` unchanged. ``model.<kind>.pretrained`` otherwise only says where
    *training* starts: a fine-tuned export always wins over it.

    Raises:
        WeightsNotFoundError: nothing to load, with the commands that fix it.
    """
    if produced and kind in produced:
        return WeightSource(kind, str(produced[kind]), "trained")
    if override:
        return WeightSource(kind, str(override), "override")
    found = experiment.find_export(kind)
    if found is not None:
        return WeightSource(kind, str(found), "export")
    if pretrained:
        return WeightSource(kind, str(pretrained), "pretrained")
    raise WeightsNotFoundError(
        f"no {kind} for experiment '{experiment.name}': {experiment.export_dir(kind)} holds no export. "
        f"Run `python -m kronos.train stage={kind} name={experiment.name}` first, or pass "
        f"weights.{kind}=<directory or hub id>."
    )
