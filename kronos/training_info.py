"""``TrainingInfo``: the record an export carries beside its weights (``training_info.json``), typed.

Written in one place (:meth:`TrainingInfo.write`, called by the export callback) and read in one place
(:meth:`TrainingInfo.read`, used by the evaluate stage and the inference front ends). The typed
accessors (:meth:`window`, :meth:`train_end`, :meth:`pretrained`, :meth:`tokenizer_location`) replace
chains of ``.get()`` on the raw JSON. Fields this version does not know (written by a newer one, or
added by hand) are kept in ``extra`` and written back unchanged.

No torch or Lightning here: inference reads it without the training stack.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos.atomic import atomic_write_json

FILE_NAME = "training_info.json"


def _dig(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...`` through dicts only; None when a level is missing or not a dict."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


@dataclass(frozen=True)
class Calibration:
    """The sampling chosen on the validation split after training (``training_info.json``'s ``calibration``).

    Attributes:
        T, top_p: the chosen temperature and nucleus mass (what evaluate, KronosPredictor and kronos-predict
            use by default when their own T / top_p is left unset).
        criterion: what chose it (``coverage``: the largest |coverage - nominal| of the 50/80/90 % central
            intervals; ``scaled_crps``: the mean CRPS of the sampled closes over the MASE scale).
        split: the split the windows came from (always the validation split: nothing is tuned on test).
        windows, sample_count, seed: the search's windows, paths per window and sampling seed.
        grid: one row per candidate (T, spread): ``{T, spread, scaled_crps, coverage: {0.5, 0.8, 0.9},
            pit_histogram}``.
        before: the row of the uncalibrated default (T 1, top-p 1, spread 1); after: the chosen row.
        spread: the chosen fan-out of the paths around the last close (used with the calibrated T;
            :func:`kronos.inference.candles.scale_spread`); 1 in records written before it existed.
    """

    T: float
    top_p: float
    criterion: str
    split: str
    windows: int
    sample_count: int
    seed: int
    grid: tuple[dict[str, Any], ...]
    before: dict[str, Any]
    after: dict[str, Any]
    spread: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "grid": [dict(row) for row in self.grid]}

    @classmethod
    def from_dict(cls, raw: Any) -> "Calibration | None":
        """From the JSON object; None when it is missing or not a calibration record."""
        if not isinstance(raw, dict):
            return None
        try:
            fields = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw or f.name != "spread"}
            return cls(**{**fields, "grid": tuple(raw["grid"])})
        except (KeyError, TypeError):
            return None


@dataclass
class TrainingInfo:
    """What an exported tokenizer or predictor records about its training.

    Attributes:
        stage: ``tokenizer`` or ``predictor``.
        exported_at: UTC ISO time of the export.
        weights: which weights were exported (``best checkpoint``, ``best validation in memory``, ``final weights``).
        best_validation: ``{metric, mode, value}`` of the monitored metric.
        global_step, epochs_completed: training progress at the export.
        world_size, num_nodes, precision, strategy: how it trained.
        model_config: the model's ``config.json`` keys.
        parameters, trainable_parameters: parameter counts (of the export; trained in this run).
        finetune: the fine-tuning mode and its settings.
        versions: installed versions of the packages behaviour depends on.
        git: ``{commit, dirty}`` of the checkout, or None outside git.
        config: the resolved run configuration (``config.data.lookback`` etc.).
        data: the datamodule's summary (sources, splits, ...).
        started_from: ``model.<stage>.pretrained`` (None: trained from scratch).
        tokenizer_source: predictor exports: ``{location, origin}`` of the tokenizer it trained on.
        calibration: predictor exports: the sampling chosen on the validation split (:class:`Calibration`
            as a dict; read it with :meth:`calibrated`), None when none was run.
        normalization: the inputs it trained on, ``level`` or ``returns`` (:mod:`kronos.data.transforms`);
            None (older exports): :meth:`input_normalization` falls back to ``config.data.normalization``,
            then ``level``.
        extra: fields this version does not know, kept as they were.
    """

    stage: str | None = None
    exported_at: str | None = None
    weights: str | None = None
    best_validation: dict[str, Any] | None = None
    global_step: int | None = None
    epochs_completed: int | None = None
    world_size: int | None = None
    num_nodes: int | None = None
    precision: str | None = None
    strategy: str | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    parameters: int | None = None
    trainable_parameters: int | None = None
    finetune: dict[str, Any] = field(default_factory=lambda: {"mode": "full"})
    versions: dict[str, str | None] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    started_from: str | None = None
    tokenizer_source: dict[str, str] | None = None
    calibration: dict[str, Any] | None = None
    normalization: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ file

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: every field (``tokenizer_source`` and ``calibration`` only when known) plus ``extra``'s keys."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for optional in ("tokenizer_source", "calibration"):
            if out[optional] is None:
                del out[optional]
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainingInfo":
        """From a parsed JSON object; unknown keys go to ``extra``."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in raw.items() if k in known},
                   extra={k: v for k, v in raw.items() if k not in known})

    def write(self, directory: str | Path) -> Path:
        """Write ``<directory>/training_info.json`` atomically; returns its path."""
        path = Path(directory) / FILE_NAME
        atomic_write_json(path, self.as_dict())
        return path

    @classmethod
    def read(cls, directory: str | Path) -> "TrainingInfo | None":
        """``<directory>/training_info.json``, or None when there is none (hub ids, published checkpoints)
        or it cannot be read as a JSON object."""
        try:
            path = Path(directory).expanduser() / FILE_NAME
            if not path.is_file():
                return None
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RuntimeError):
            return None
        return cls.from_dict(raw) if isinstance(raw, dict) else None

    # ------------------------------------------------------------------ typed reads

    def window(self) -> int | None:
        """Rows of the training windows, ``config.data.lookback + config.data.horizon`` (None when unknown)."""
        lookback, horizon = _dig(self.config, "data", "lookback"), _dig(self.config, "data", "horizon")
        if isinstance(lookback, int) and isinstance(horizon, int):
            return lookback + horizon
        return None

    def train_end(self) -> str | None:
        """Last timestamp of the training split (``data.splits.train.end``), as recorded."""
        end = _dig(self.data, "splits", "train", "end")
        return str(end) if end else None

    def pretrained(self, stage: str = "predictor") -> str | None:
        """Weights this export was fine-tuned from: ``started_from`` for its own stage, else the run
        config's ``model.<stage>.pretrained`` (None: trained from scratch)."""
        if self.started_from and (self.stage in (None, stage)):
            return str(self.started_from)
        start = _dig(self.config, "model", stage, "pretrained")
        return str(start) if start else None

    def input_normalization(self) -> str:
        """The normalisation inference must use: ``normalization``, else the run config's
        ``data.normalization``, else ``level`` (the reference's, which published checkpoints keep)."""
        return str(self.normalization or _dig(self.config, "data", "normalization") or "level")

    def tokenizer_location(self) -> str | None:
        """Where the tokenizer a predictor trained on came from (``tokenizer_source.location``)."""
        location = _dig(self.tokenizer_source, "location")
        return str(location) if location else None

    def calibrated(self) -> Calibration | None:
        """The sampling chosen on the validation split after training, when one was recorded."""
        return Calibration.from_dict(self.calibration)
