"""``EvaluateSettings``: the ``evaluate`` config group (conf/evaluate/default.yaml) as a typed object.

Defaults live in the YAML only; ``from_config`` requires every key, so code and config never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from kronos.evaluate.baselines import BASELINES
from kronos.evaluate.tasks import TASKS
from kronos.inference.settings import SAMPLING_KEYS, SamplingSettings, sampling_from_config
from kronos.inference.validation import ForecastInputError

COVERAGE_KEYS = ("0.5", "0.8", "0.9")  # the metrics.json contract's coverage keys


class EvaluateConfigError(ValueError):
    """An ``evaluate.*`` setting is invalid (one message naming the key and what to write instead)."""


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


@dataclass(frozen=True)
class TaskOptions:
    """``evaluate.task_options``: cost bounds of the task suite (see conf/evaluate/default.yaml)."""

    garch_refit_every: int
    classifier_epochs: int
    max_windows: int


@dataclass(frozen=True)
class EvaluateSettings:
    """See conf/evaluate/default.yaml for the meaning of each field.

    ``sampling`` is the ``evaluate.sampling`` block (its seed, always set, also breaks PIT ties).
    """

    split: str
    stride: int
    baselines: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    kronos_data_end: str | None
    sampling: SamplingSettings
    batch_size: int
    max_context: int
    device: str | None
    coverage_levels: tuple[float, ...]
    quantile_levels: tuple[float, ...]
    pit_bins: int
    group_by: str | None
    tasks: tuple[str, ...] | None
    task_sampling: Mapping[str, SamplingSettings]
    task_options: TaskOptions
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast on CUDA (kronos.inference.predictor.autocast_context)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "EvaluateSettings":
        """Validate and convert ``cfg.evaluate`` (a DictConfig or a plain mapping).

        Raises:
            EvaluateConfigError: a missing or invalid key, named with the fix.
        """
        try:
            from omegaconf import OmegaConf

            plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
        except ImportError:  # pragma: no cover - omegaconf is a dependency
            plain = dict(cfg)

        def need(key: str) -> Any:
            if key not in plain:
                raise EvaluateConfigError(f"evaluate.{key} is missing: add it to the evaluate config "
                                          "(see conf/evaluate/default.yaml)")
            return plain[key]

        try:
            sampling = sampling_from_config("evaluate", plain)
        except ForecastInputError as err:
            raise EvaluateConfigError(str(err)) from None
        if sampling.seed is None:
            raise EvaluateConfigError("evaluate.sampling.seed is null: set a seed (default ${seed}) so reports are "
                                      "reproducible")
        if sampling.sample_count < 2:
            raise EvaluateConfigError(f"evaluate.sampling.sample_count={sampling.sample_count}: probabilistic metrics "
                                      "need at least 2 sample paths (20 or more for stable 90 % intervals)")
        stride = int(need("stride"))
        if stride < 1:
            raise EvaluateConfigError(f"evaluate.stride={stride}: must be a positive number of rows between origins")
        baselines = tuple(str(b) for b in (need("baselines") or []))
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise EvaluateConfigError(f"evaluate.baselines: unknown {unknown}; choose from {list(BASELINES)}")
        if "naive" not in baselines:
            raise EvaluateConfigError("evaluate.baselines must include naive: relative scores are measured against it")
        levels = tuple(float(v) for v in need("coverage_levels"))
        missing = [k for k in COVERAGE_KEYS if float(k) not in levels]
        if missing or any(not 0.0 < v < 1.0 for v in levels):
            raise EvaluateConfigError(f"evaluate.coverage_levels={list(levels)}: levels must lie in (0, 1) and "
                                      f"include {list(COVERAGE_KEYS)}")
        quantiles = tuple(float(v) for v in need("quantile_levels"))
        if not quantiles or any(not 0.0 < v < 1.0 for v in quantiles):
            raise EvaluateConfigError(f"evaluate.quantile_levels={list(quantiles)}: give levels in (0, 1)")
        group_by = need("group_by")
        if group_by not in (None, "none", "exchange"):
            raise EvaluateConfigError(f"evaluate.group_by={group_by!r}: use exchange or null")
        models = _model_specs(need("models") or [], baselines)
        kronos_data_end = _date_or_none(need("kronos_data_end"), "evaluate.kronos_data_end")
        tasks, task_sampling, task_options = _task_settings(plain)
        return cls(
            split=str(need("split")), stride=stride, baselines=baselines, models=models,
            kronos_data_end=kronos_data_end, sampling=sampling, batch_size=int(need("batch_size")),
            max_context=int(need("max_context")), device=need("device"),
            coverage_levels=levels, quantile_levels=quantiles, pit_bins=int(need("pit_bins")),
            group_by=None if group_by in (None, "none") else str(group_by),
            tasks=tasks, task_sampling=task_sampling, task_options=task_options,
            precision=_precision(plain.get("precision", "fp32")),
        )


def _precision(value: Any) -> str:
    """``evaluate.precision``: fp32, bf16 or fp16."""
    if value not in ("fp32", "bf16", "fp16"):
        raise EvaluateConfigError(f"evaluate.precision={value!r}: use fp32, bf16 or fp16 (the last two: CUDA autocast)")
    return str(value)


def _task_settings(plain: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, dict[str, SamplingSettings], TaskOptions]:
    """``evaluate.tasks``, ``evaluate.task_sampling`` and ``evaluate.task_options``, checked."""
    for key in ("tasks", "task_sampling", "task_options"):
        if key not in plain:
            raise EvaluateConfigError(f"evaluate.{key} is missing: add it to the evaluate config "
                                      "(see conf/evaluate/default.yaml)")
    raw_tasks = plain["tasks"]
    if isinstance(raw_tasks, str):  # evaluate.tasks=price: one task, not its letters
        raw_tasks = [raw_tasks]
    tasks = None if raw_tasks is None else tuple(str(t) for t in raw_tasks)
    unknown = [t for t in tasks or () if t not in TASKS]
    if unknown:
        raise EvaluateConfigError(f"evaluate.tasks: unknown {unknown}; choose from {list(TASKS)} (null: every task "
                                  "the data allows, []: none)")
    blocks = plain["task_sampling"] or {}
    extra = sorted(set(blocks) - set(TASKS))
    if extra:
        raise EvaluateConfigError(f"evaluate.task_sampling has unknown tasks {extra}; the tasks are {list(TASKS)}")
    sampling: dict[str, SamplingSettings] = {}
    for task in TASKS:
        block = blocks.get(task)
        if not isinstance(block, Mapping) or sorted(block) != sorted(SAMPLING_KEYS):
            raise EvaluateConfigError(f"evaluate.task_sampling.{task} must set exactly {list(SAMPLING_KEYS)}, got "
                                      f"{dict(block) if isinstance(block, Mapping) else block!r}")
        try:
            sampling[task] = SamplingSettings(**block).validate(prefix=f"evaluate.task_sampling.{task}.")
        except ForecastInputError as err:
            raise EvaluateConfigError(str(err)) from None
        if sampling[task].seed is None:
            raise EvaluateConfigError(f"evaluate.task_sampling.{task}.seed must be a whole number: the suite's "
                                      "scores are reproducible")
    opts = plain["task_options"] or {}
    values = {}
    for key, low in (("garch_refit_every", 1), ("classifier_epochs", 1), ("max_windows", 20)):
        value = opts.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise EvaluateConfigError(f"evaluate.task_options.{key}={value!r}: give a whole number of at least {low}")
        values[key] = value
    unknown_opts = sorted(set(opts) - set(values))
    if unknown_opts:
        raise EvaluateConfigError(f"evaluate.task_options has unknown keys {unknown_opts}; allowed are {list(values)}")
    return tasks, sampling, TaskOptions(**values)


def _date_or_none(value: Any, key: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return pd.Timestamp(str(value)).date().isoformat()
    except (ValueError, TypeError):
        raise EvaluateConfigError(f"{key}={value!r} is not a date: write it as YYYY-MM-DD or null") from None


def _model_specs(entries: Any, baselines: tuple[str, ...]) -> tuple[ModelSpec, ...]:
    """``evaluate.models`` entries -> ModelSpec, with names checked unique and not reserved."""
    specs, seen = [], {"kronos", *baselines}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise EvaluateConfigError(f"evaluate.models[{i}] must be a mapping {{name, tokenizer, predictor}}, "
                                      f"got {entry!r}")
        lacking = [k for k in ("name", "tokenizer", "predictor") if not entry.get(k)]
        if lacking:
            raise EvaluateConfigError(f"evaluate.models[{i}] lacks {lacking}: each entry needs name, tokenizer "
                                      "and predictor (directories or hub ids)")
        name = str(entry["name"])
        if name in seen:
            raise EvaluateConfigError(f"evaluate.models[{i}].name={name!r} is already used (kronos, the baselines "
                                      "and every entry need distinct names)")
        unknown = sorted(set(entry) - {"name", "tokenizer", "predictor", "data_end"})
        if unknown:
            raise EvaluateConfigError(f"evaluate.models[{i}] has unknown keys {unknown}: allowed are name, "
                                      "tokenizer, predictor, data_end")
        seen.add(name)
        specs.append(ModelSpec(name, str(entry["tokenizer"]), str(entry["predictor"]),
                               _date_or_none(entry.get("data_end"), f"evaluate.models[{i}].data_end")))
    return tuple(specs)
