"""The one up-front check of a composed training config, before any work starts.

``check_config(cfg, stages)`` runs first in ``kronos.train.train`` (before the experiment directory, the data or
a model is touched). It builds the settings of every group a running stage reads, each of which checks its own
keys (``backtest`` -> ``BacktestSettings``, ``evaluate`` -> ``EvaluateSettings``, as the stage table says;
``model.finetune`` -> ``FinetuneSettings`` when a stage trains), then checks the keys no settings type owns with
the table below: data, optim, trainer, monitor, naming. Each refusal names the key, the value it got and an
example of a good one, in one line (``ConfigError``, a ``KronosUserError``: exit status 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from kronos.data.errors import quoted
from kronos.errors import ConfigError, KronosUserError
from kronos.settings_io import Check, boolean, choice, number, optional_text, plain, text, whole
from kronos.stages.table import STAGES

# An experiment name is one directory below output_root: no separators, no "." or "..", printable.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.,=+-]{0,127}$")
KNOWN_PRECISIONS = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed",
                    "bf16-true", "transformer-engine", "transformer-engine-float16")
FEATURE_NAMES = ("open", "high", "low", "close", "volume", "amount")

@dataclass(frozen=True)
class Rule:
    """How one key is checked: ``check`` says what is wrong, ``example`` is a value that works."""

    check: Check
    example: str
    when: str | None = None  # "train": only when a stage that trains runs


def experiment_name(value: Any) -> str | None:
    """A single directory name: letters, digits and ``_ . , = + -``, starting with a letter or digit."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        return ("must be one directory name (letters, digits and _ . , = + -, starting with a letter or digit, "
                "no / or ..)")
    return None


def devices(value: Any) -> str | None:
    """Lightning's devices: "auto", a whole number >= 1 (or -1: all), or a non-empty list of device indices."""
    if value == "auto" or value == -1:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value >= 1 else "must be 'auto', -1 (all), a count >= 1 or a list of device indices"
    if isinstance(value, (list, tuple)) and value and all(whole(0)(v) is None for v in value):
        return None
    if isinstance(value, str) and re.fullmatch(r"\d+(,\d+)*,?", value):
        return None
    return "must be 'auto', -1 (all), a count >= 1 or a list of device indices"


def _lazy_choice(module: str, name: str) -> Check:
    """``choice`` over a tuple defined in ``module`` (imported when the rule runs: one definition of the names)."""
    def check(value: Any) -> str | None:
        import importlib

        return choice(*getattr(importlib.import_module(module), name))(value)
    return check


def features(value: Any) -> str | None:
    """A non-empty list of distinct feature names."""
    if not isinstance(value, (list, tuple)) or not value or len(set(map(str, value))) != len(value):
        return f"must be a non-empty list of distinct names from {list(FEATURE_NAMES)}"
    unknown = [v for v in value if v not in FEATURE_NAMES]
    return f"has unknown feature(s) {quoted(unknown)}: use names from {list(FEATURE_NAMES)}" if unknown else None


def betas(value: Any) -> str | None:
    """Two numbers in [0, 1)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return "must be two numbers in [0, 1)"
    return next(("must be two numbers in [0, 1)" for v in value if number(0, 1, high_open=True)(v)), None)


def batches(value: Any) -> str | None:
    """Lightning's limit_*_batches: a whole number >= 0 or a fraction in [0, 1]."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value >= 0 else "must be a whole number >= 0 or a fraction in [0, 1]"
    return number(0, 1)(value) and "must be a whole number >= 0 or a fraction in [0, 1]"


def split_value(value: Any) -> str | None:
    """A split ratio in [0, 1], or a [start, end] pair of dates (checked where the data is split)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(0, 1)(value)
    if isinstance(value, (list, tuple)):
        return None if len(value) == 2 else "must be a ratio in [0, 1] or a [start, end] pair of dates"
    return "must be a ratio in [0, 1] or a [start, end] pair of dates"


RULES: dict[str, Rule] = {
    "name": Rule(experiment_name, "name=csi300_small"),
    "output_root": Rule(text, "output_root=outputs"),
    "seed": Rule(whole(0), "seed=42"),
    "compile": Rule(boolean, "compile=false"),
    "sweep_key": Rule(optional_text, "sweep_key=null"),
    "weights.tokenizer": Rule(optional_text, "weights.tokenizer=null (or a directory / hub id)"),
    "weights.predictor": Rule(optional_text, "weights.predictor=null (or a directory / hub id)"),
    "stage.sampled_s1": Rule(boolean, "stage.sampled_s1=false"),
    "stage.loss_targets": Rule(_lazy_choice("kronos.lightning.predictor_training", "LOSS_TARGETS"),
                               "stage.loss_targets=all"),
    "stage.step_loss_weight": Rule(number(0), "stage.step_loss_weight=0"),
    "model.predictor.init": Rule(choice("default", "codes"), "model.predictor.init=default"),
    "data.benchmark": Rule(optional_text, "data.benchmark=null"),
    "monitor.metric": Rule(text, "monitor.metric=val/loss"),
    "monitor.mode": Rule(choice("min", "max"), "monitor.mode=min"),
    "optim.lr": Rule(number(0, low_open=True, none=True), "optim.lr=1e-4 (or null for model.lr.<stage>)"),
    "optim.weight_decay": Rule(number(0), "optim.weight_decay=0.1"),
    "optim.betas": Rule(betas, "optim.betas=[0.9,0.95]"),
    "optim.grad_clip": Rule(number(0, none=True), "optim.grad_clip=3.0 (0 or null: no clipping)"),
    "optim.accumulate": Rule(whole(1), "optim.accumulate=1"),
    "data.lookback": Rule(whole(1), "data.lookback=90"),
    "data.horizon": Rule(whole(1), "data.horizon=10"),
    "data.batch_size": Rule(whole(1), "data.batch_size=64"),
    "data.clip": Rule(number(0, low_open=True), "data.clip=5.0"),
    "data.num_workers": Rule(whole(0), "data.num_workers=0"),
    "data.samples_per_epoch": Rule(whole(1, none=True), "data.samples_per_epoch=null"),
    "data.train_members_only": Rule(boolean, "data.train_members_only=true"),
    "data.features": Rule(features, "data.features=[open,high,low,close,volume,amount]"),
    "data.splits.*": Rule(split_value, "data.splits.train=0.7"),
    "data.source.components.*.weight": Rule(number(0), "data.source.components.<name>.weight=0.5"),
    "trainer.max_epochs": Rule(whole(1, none=True, also=(-1,)), "trainer.max_epochs=10", "train"),
    "trainer.max_steps": Rule(whole(1, also=(-1,)), "trainer.max_steps=-1 (no step limit)", "train"),
    "trainer.limit_train_batches": Rule(lambda v: batches(v) or (None if v else "must be > 0: 0 trains nothing"),
                                        "trainer.limit_train_batches=60", "train"),
    "trainer.limit_val_batches": Rule(batches, "trainer.limit_val_batches=20", "train"),
    "trainer.val_check_interval": Rule(number(0, low_open=True), "trainer.val_check_interval=1.0", "train"),
    "trainer.log_every_n_steps": Rule(whole(1), "trainer.log_every_n_steps=10", "train"),
    "trainer.num_nodes": Rule(whole(1), "trainer.num_nodes=1", "train"),
    "trainer.devices": Rule(devices, "trainer.devices=1", "train"),
    "trainer.accelerator": Rule(choice("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu"), "trainer.accelerator=auto",
                                "train"),
    "callbacks.early_stopping.patience": Rule(whole(0), "callbacks.early_stopping.patience=5", "train"),
    "trainer.num_sanity_val_steps": Rule(whole(0, also=(-1,)), "trainer.num_sanity_val_steps=0", "train"),
    "trainer.precision": Rule(lambda v: choice(*KNOWN_PRECISIONS)(str(v)), "trainer.precision=32-true", "train"),
    "trainer.gradient_clip_val": Rule(number(0, none=True), "optim.grad_clip=3.0", "train"),
    "trainer.accumulate_grad_batches": Rule(whole(1), "optim.accumulate=1", "train"),
}


ConfigValueError = ConfigError  # the name older code and tests import


def _values(cfg: DictConfig, pattern: str) -> Iterator[tuple[str, Any]]:
    """(key, value) of every key matching ``pattern`` (``*`` stands for any one key) present in ``cfg``."""
    head, star, tail = pattern.partition(".*")
    if not star:
        node_key, _, leaf = pattern.rpartition(".")
        node = OmegaConf.select(cfg, node_key) if node_key else cfg
        if isinstance(node, DictConfig) and leaf in node:
            yield pattern, node[leaf]
        return
    node = OmegaConf.select(cfg, head)
    if not isinstance(node, DictConfig):
        return
    for key in node:
        if not tail:
            yield f"{head}.{key}", node[key]
        else:
            sub = node[key]
            leaf = tail.lstrip(".")
            if isinstance(sub, DictConfig) and leaf in sub:
                yield f"{head}.{key}.{leaf}", sub[leaf]


def check_config(cfg: DictConfig, stages: Sequence[str]) -> None:
    """Check the settings of every group ``stages`` read, then every key of ``RULES`` present in ``cfg``.

    Raises:
        ConfigValueError: ``<key>=<value> <what is wrong>: pass e.g. <example>`` for the first bad key.
    """
    trains = any(STAGES[s].trains for s in stages if s in STAGES)
    for pattern, rule in RULES.items():
        if rule.when == "train" and not trains:
            continue
        try:
            found = list(_values(cfg, pattern))
        except Exception as err:  # an interpolation that cannot be resolved, e.g. ${oc.env:...} unset
            raise ConfigValueError(f"{pattern}: cannot be read ({' '.join(str(err).split())[:200]})") from None
        for key, value in found:
            problem = rule.check(plain(value))
            if problem:
                raise ConfigValueError(f"{key}={quoted(plain(value))} {problem}: pass e.g. {rule.example}")
    for name in stages:
        _settings(name, lambda: STAGES[name].check_settings(cfg))
    if trains:
        from kronos.lightning.finetune import FinetuneSettings

        _settings("model.finetune", lambda: FinetuneSettings.from_config(plain(OmegaConf.select(cfg, "model.finetune"))))
    _check_across(cfg, "evaluate" in stages)


def _settings(group: str, build: Callable[[], Any]) -> None:
    """``build()`` (a settings type checking its group); a group that cannot even be read is a ConfigError too."""
    try:
        build()
    except KronosUserError:
        raise
    except Exception as err:  # e.g. an interpolation that cannot be resolved
        raise ConfigValueError(f"{group}: cannot be read ({' '.join(str(err).split())[:200]})") from None


def _check_across(cfg: DictConfig, evaluates: bool) -> None:
    """Rules between keys: the split evaluate scores must be one of data.splits."""
    splits = OmegaConf.select(cfg, "data.splits")
    split = OmegaConf.select(cfg, "evaluate.split")
    if evaluates and isinstance(splits, DictConfig) and split is not None and split not in splits:
        raise ConfigValueError(f"evaluate.split={quoted(split)} is not one of data.splits {list(splits)}: pass e.g. "
                               f"evaluate.split=test")
