"""``EvaluateSettings``: the ``evaluate`` config group (conf/evaluate/default.yaml) as a typed object.

Built by :func:`kronos.settings_io.settings_from_config`; each rule is written once, on construction of the type
that owns the key. Code defaults equal the YAML's (tests/config/test_settings_defaults.py); ``stride``,
``sampling`` and ``task_sampling`` have none, since their YAML values follow ``${data.horizon}`` and ``${seed}``,
and a sampling block sets every key (a partial block would silently take another block's temperature).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pandas as pd

from kronos.errors import ConfigError
from kronos.evaluate.baselines import BASELINES
from kronos.evaluate.task_table import SUITE_TASKS as TASKS
from kronos.inference.settings import SAMPLING_KEYS, SamplingSettings, fill_unset, refuse_flat_sampling
from kronos.settings_io import levels, plain, require, settings_from_config, whole

COVERAGE_KEYS = ("0.5", "0.8", "0.9")  # the metrics.json contract's coverage keys
EvaluateConfigError = ConfigError  # the name older code and tests import


@dataclass(frozen=True)
class ModelSpec:
    """One extra tokenizer/predictor pair to score (an ``evaluate.models`` entry).

    Attributes:
        name: the row name in the report (unique; not ``kronos`` nor a baseline name).
        tokenizer, predictor: directories or hub ids.
        data_end: last date of the data these weights were trained on (ISO date) or None if unknown.
    """

    name: str
    tokenizer: str
    predictor: str
    data_end: str | None = None

    def validate(self, prefix: str = "evaluate.models[]") -> "ModelSpec":
        """Check the entry (``prefix``: where it sits, e.g. ``evaluate.models[0].``); the date normalised in place."""
        lacking = [k for k in ("name", "tokenizer", "predictor") if not getattr(self, k)]
        if lacking:
            raise ConfigError(f"{prefix.rstrip('.')} lacks {lacking}: each entry needs name, tokenizer and predictor "
                              "(directories or hub ids)")
        object.__setattr__(self, "data_end", _date_or_none(self.data_end, f"{prefix}data_end"))
        return self


@dataclass(frozen=True)
class TaskOptions:
    """``evaluate.task_options``: cost bounds of the task suite (see conf/evaluate/default.yaml)."""

    garch_refit_every: int = 10
    classifier_epochs: int = 30
    max_windows: int = 4000

    def __post_init__(self) -> None:
        for key, low, example in (("garch_refit_every", 1, 10), ("classifier_epochs", 1, 30), ("max_windows", 20, 4000)):
            require(f"evaluate.task_options.{key}", getattr(self, key), whole(low), example)


@dataclass(frozen=True)
class EvaluateSettings:
    """See conf/evaluate/default.yaml for the meaning of each field.

    ``sampling`` is the ``evaluate.sampling`` block (its seed, always set, also breaks PIT ties).
    """

    stride: int
    sampling: SamplingSettings
    task_sampling: Mapping[str, SamplingSettings]
    split: str = "test"
    baselines: tuple[str, ...] = ("naive", "drift", "hist_vol")
    models: tuple[ModelSpec, ...] = ()
    kronos_data_end: str | None = None
    batch_size: int = 256
    max_context: int = 512
    device: str | None = None
    coverage_levels: tuple[float, ...] = (0.5, 0.8, 0.9)
    quantile_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    pit_bins: int = 10
    group_by: str | None = "exchange"
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast on CUDA (kronos.inference.predictor.autocast_context)
    tasks: tuple[str, ...] | None = None
    task_options: TaskOptions = field(default_factory=TaskOptions)

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_config(cls, cfg: Any) -> "EvaluateSettings":
        """Validate and convert ``cfg.evaluate`` (a DictConfig or a plain mapping).

        Raises:
            EvaluateConfigError: a missing or invalid key, named with the fix.
        """
        data = plain(cfg)
        if isinstance(data, Mapping):
            refuse_flat_sampling("evaluate", data)
            if "sampling" in data:  # null T / top_p: the calibrated value, filled in by the stage
                data = {**data, "sampling": fill_unset(data["sampling"])}
            _check_sampling_blocks(data)
        return settings_from_config(cls, data, "evaluate")


def _check_sampling_blocks(data: Mapping[str, Any]) -> None:
    """``evaluate.sampling`` and every ``evaluate.task_sampling.<task>`` set each sampling key (no code defaults)."""
    block = data.get("sampling")
    if isinstance(block, Mapping):
        missing = [k for k in SAMPLING_KEYS if k not in block]
        if missing:
            raise ConfigError(f"evaluate.sampling.{missing[0]} is missing: add it to the evaluate config")
    blocks = data.get("task_sampling")
    if not isinstance(blocks, Mapping):
        return
    extra = sorted(set(blocks) - set(TASKS))
    if extra:
        raise ConfigError(f"evaluate.task_sampling has unknown tasks {extra}; the tasks are {list(TASKS)}")
    for task in TASKS:
        block = blocks.get(task)
        if not isinstance(block, Mapping) or sorted(block) != sorted(SAMPLING_KEYS):
            raise ConfigError(f"evaluate.task_sampling.{task} must set exactly {list(SAMPLING_KEYS)}, got "
                              f"{dict(block) if isinstance(block, Mapping) else block!r}")


def _check(s: EvaluateSettings) -> None:
    """The one validation of the group (on construction); group_by, dates and levels normalised in place."""
    require("evaluate.stride", s.stride, whole(1), 10)
    for key, low, example in (("batch_size", 1, 256), ("max_context", 1, 512), ("pit_bins", 2, 10)):
        require(f"evaluate.{key}", getattr(s, key), whole(low), example)
    require("evaluate.coverage_levels", list(s.coverage_levels), levels, "[0.5,0.8,0.9]")
    require("evaluate.quantile_levels", list(s.quantile_levels), levels, "[0.1,0.5,0.9]")
    _check_sampling(s)
    unknown = [b for b in s.baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"evaluate.baselines: unknown {unknown}; choose from {list(BASELINES)}")
    if "naive" not in s.baselines:
        raise ConfigError("evaluate.baselines must include naive: relative scores are measured against it")
    if any(float(k) not in s.coverage_levels for k in COVERAGE_KEYS):
        raise ConfigError(f"evaluate.coverage_levels={list(s.coverage_levels)}: levels must lie in (0, 1) and "
                          f"include {list(COVERAGE_KEYS)}")
    if s.group_by not in (None, "none", "exchange"):
        raise ConfigError(f"evaluate.group_by={s.group_by!r}: use exchange or null")
    if s.precision not in ("fp32", "bf16", "fp16"):
        raise ConfigError(f"evaluate.precision={s.precision!r}: use fp32, bf16 or fp16 (the last two: CUDA autocast)")
    unknown = [t for t in s.tasks or () if t not in TASKS]
    if unknown:
        raise ConfigError(f"evaluate.tasks: unknown {unknown}; choose from {list(TASKS)} (null: every task "
                          "the data allows, []: none)")
    _check_models(s.models, s.baselines)
    for key, value in (("coverage_levels", tuple(float(v) for v in s.coverage_levels)),
                       ("quantile_levels", tuple(float(v) for v in s.quantile_levels)),
                       ("group_by", None if s.group_by in (None, "none") else str(s.group_by)),
                       ("kronos_data_end", _date_or_none(s.kronos_data_end, "evaluate.kronos_data_end"))):
        object.__setattr__(s, key, value)


def _check_sampling(s: EvaluateSettings) -> None:
    """The sampling blocks' evaluate rules (each block's own values are checked by SamplingSettings.validate)."""
    if s.sampling.seed is None:
        raise ConfigError("evaluate.sampling.seed is null: set a seed (default ${seed}) so reports are reproducible")
    if s.sampling.sample_count < 2:
        raise ConfigError(f"evaluate.sampling.sample_count={s.sampling.sample_count}: probabilistic metrics "
                          "need at least 2 sample paths (20 or more for stable 90 % intervals)")
    missing = [task for task in TASKS if task not in s.task_sampling]
    if missing:
        raise ConfigError(f"evaluate.task_sampling lacks {missing}: give each task's sampling block")
    for task in TASKS:
        if s.task_sampling[task].seed is None:
            raise ConfigError(f"evaluate.task_sampling.{task}.seed must be a whole number: the suite's "
                              "scores are reproducible")


def _date_or_none(value: Any, key: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return pd.Timestamp(str(value)).date().isoformat()
    except (ValueError, TypeError):
        raise ConfigError(f"{key}={value!r} is not a date: write it as YYYY-MM-DD or null") from None


def _check_models(specs: tuple[ModelSpec, ...], baselines: tuple[str, ...]) -> None:
    """``evaluate.models``: mappings whose names are distinct and not reserved."""
    seen = {"kronos", *baselines}
    for i, spec in enumerate(specs):
        if not isinstance(spec, ModelSpec):
            raise ConfigError(f"evaluate.models[{i}] must be a mapping {{name, tokenizer, predictor}}, got {spec!r}")
        if spec.name in seen:
            raise ConfigError(f"evaluate.models[{i}].name={spec.name!r} is already used (kronos, the baselines "
                              "and every entry need distinct names)")
        seen.add(spec.name)
