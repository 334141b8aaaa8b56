"""Fine-tuning modes: train every weight (``full``, optionally with layer-wise lr decay), keep some frozen
(``freeze``) or train low-rank adapters through ``peft`` (``lora``).

The mode is ``model.finetune`` in the config and applies to the model of the stage being trained (the
tokenizer or the predictor). Whatever the mode, exports stay in the published format: LoRA adapters are
merged into the base weights (:func:`published_copy`), so ``from_pretrained`` and the reference code load
them unchanged.

Depth (used by ``freeze_first_n_blocks`` and ``layer_decay``) is read from the model's top-level children
in registration order, which is forward order for both Kronos models: children before the first block
list are the input (depth 0), every block of a ``ModuleList`` is one level, children between block lists
share a level, and children after the last block list are the output level.
"""

from __future__ import annotations

import copy
import fnmatch
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import torch
from torch import nn

from kronos.errors import ConfigError
from kronos.settings_io import settings_from_config

if TYPE_CHECKING:
    from kronos.lightning.base import KronosStageModule

log = logging.getLogger(__name__)

MODES = ("full", "freeze", "lora")


FinetuneConfigError = ConfigError  # the name older code and tests import

@dataclass(frozen=True)
class LoraSettings:
    """``model.finetune.lora``: peft's ``LoraConfig`` (r, lora_alpha, lora_dropout, target_modules, modules_to_save)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    # Module-name suffixes that get adapters (peft's matching); the default covers every attention and
    # feed-forward projection of both models, including the predictor's dependency-aware cross attention.
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "w1", "w2", "w3")
    # Modules trained in full beside the adapters (e.g. ``head``); merged back on export.
    modules_to_save: tuple[str, ...] = ()


@dataclass(frozen=True)
class FinetuneSettings:
    """``model.finetune`` validated. Code defaults equal conf/model/_finetune.yaml's.

    Attributes:
        mode: ``full``, ``freeze`` or ``lora``.
        layer_decay: learning rate of a parameter at depth d = lr x layer_decay^(D - d), D the output
            level (full and freeze modes); None for one learning rate.
        freeze: ``fnmatch`` patterns of module or parameter names kept frozen (freeze mode); a pattern
            that matches nothing in the stage's model is skipped, so one list can name modules of both
            models (the tokenizer's ``embed``, the predictor's ``embedding`` and ``time_emb``).
        freeze_first_n_blocks: also freeze the first N transformer blocks in depth order (freeze mode).
        lora: adapter settings (lora mode).
    """

    mode: str = "full"
    layer_decay: float | None = None
    freeze: tuple[str, ...] = ("embed", "embedding", "time_emb")
    freeze_first_n_blocks: int = 1
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "FinetuneSettings":
        """Settings from the ``model.finetune`` mapping (None: full fine-tuning); raises FinetuneConfigError."""
        return cls() if cfg is None else settings_from_config(cls, cfg, "model.finetune")

    def describe(self) -> dict[str, Any]:
        """What training_info.json records: the settings that apply to the chosen mode."""
        info: dict[str, Any] = {"mode": self.mode}
        if self.mode in ("full", "freeze"):
            info["layer_decay"] = self.layer_decay
        if self.mode == "freeze":
            info["freeze"] = list(self.freeze)
            info["freeze_first_n_blocks"] = self.freeze_first_n_blocks
        if self.mode == "lora":
            lora = asdict(self.lora)
            info["lora"] = {k: list(v) if isinstance(v, tuple) else v for k, v in lora.items()}
        return info


def _check(self: FinetuneSettings) -> None:
    """The one validation of ``model.finetune`` (on construction): the first bad key, named."""
    if self.mode not in MODES:
        raise FinetuneConfigError(f"model.finetune.mode={self.mode!r}: expected one of {', '.join(MODES)}")
    if self.layer_decay is not None:
        if not 0.0 < float(self.layer_decay) <= 1.0:
            raise FinetuneConfigError(
                f"model.finetune.layer_decay={self.layer_decay}: expected a number in (0, 1], or null for one lr"
            )
        if self.mode == "lora":
            raise FinetuneConfigError(
                "model.finetune.layer_decay is an option of mode=full (or freeze), not lora: "
                "set model.finetune.layer_decay=null or choose another mode"
            )
    if self.freeze_first_n_blocks < 0:
        raise FinetuneConfigError(
            f"model.finetune.freeze_first_n_blocks={self.freeze_first_n_blocks}: expected 0 or more"
        )
    lora = self.lora
    if self.mode == "lora":
        if lora.r < 1:
            raise FinetuneConfigError(f"model.finetune.lora.r={lora.r}: the adapter rank must be at least 1")
        if not 0.0 <= lora.dropout < 1.0:
            raise FinetuneConfigError(f"model.finetune.lora.dropout={lora.dropout}: expected a value in [0, 1)")
        if not lora.target_modules:
            raise FinetuneConfigError("model.finetune.lora.target_modules is empty: name the modules to adapt")


def apply_finetune(module: "KronosStageModule", cfg: Mapping[str, Any] | None) -> "KronosStageModule":
    """Put ``module.model`` (the stage's network) in the configured fine-tuning mode and return ``module``.

    Called once where a stage's LightningModule is built, before the optimizer is configured and before a
    Lightning checkpoint is restored (a resumed LoRA run rebuilds the same adapter structure first).
    """
    settings = cfg if isinstance(cfg, FinetuneSettings) else FinetuneSettings.from_config(cfg)
    module.finetune = settings
    if settings.mode == "freeze":
        frozen = freeze_parameters(module.model, settings.freeze, settings.freeze_first_n_blocks)
        log.info("%s: froze %d parameter tensors (%s)", module.stage, len(frozen), ", ".join(settings.freeze))
    elif settings.mode == "lora":
        module.model = add_lora(module.model, settings.lora)
    total, trainable = count_parameters(module.model)
    log.info("%s fine-tuning mode %s: %d of %d parameters trainable", module.stage, settings.mode, trainable, total)
    return module


def base_model(model: nn.Module) -> nn.Module:
    """The published-format network inside ``model`` (itself, or the base of a peft wrapper)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def is_adapted(model: nn.Module) -> bool:
    """Whether ``model`` is wrapped by peft (its weights must be merged before export)."""
    return base_model(model) is not model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts of ``model`` as trained (adapters included)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def depth_levels(model: nn.Module) -> tuple[dict[str, int], list[str], int]:
    """Depth of every top-level child of ``model`` (see the module docstring).

    Returns (level of each top-level name or ``<list>.<i>`` block name, block names in depth order,
    the output level D).
    """
    levels: dict[str, int] = {}
    blocks: list[str] = []
    level, pending = 0, []  # pending: non-block children waiting for the next level number
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            if pending:
                levels.update({p: level for p in pending})
                level, pending = level + 1, []
            for i in range(len(child)):
                levels[f"{name}.{i}"] = level
                blocks.append(f"{name}.{i}")
                level += 1
        else:
            pending.append(name)
    levels.update({p: level for p in pending})
    return levels, blocks, max(levels.values(), default=0)


def _level_of(param_name: str, levels: Mapping[str, int]) -> int:
    parts = param_name.split(".")
    return levels.get(".".join(parts[:2]), levels.get(parts[0], 0))


def _name_prefixes(param_name: str) -> Iterable[str]:
    """"a.b.weight" -> "a", "a.b", "a.b.weight": a pattern may name a module or a parameter."""
    parts = param_name.split(".")
    return (".".join(parts[: i + 1]) for i in range(len(parts)))


def freeze_parameters(model: nn.Module, patterns: Iterable[str], first_n_blocks: int = 0) -> list[str]:
    """Set ``requires_grad=False`` on parameters named by ``patterns`` or inside the first N blocks.

    Returns the frozen parameter names. Raises FinetuneConfigError when nothing or everything would be
    frozen, or when ``first_n_blocks`` exceeds the model's blocks.
    """
    patterns = list(patterns)
    _, blocks, _ = depth_levels(model)
    if first_n_blocks > len(blocks):
        raise FinetuneConfigError(
            f"model.finetune.freeze_first_n_blocks={first_n_blocks} but {type(model).__name__} has "
            f"{len(blocks)} blocks ({', '.join(blocks)})"
        )
    block_patterns = blocks[:first_n_blocks]
    named = dict(model.named_parameters())
    unused = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for name in named for n in _name_prefixes(name))]
    if unused:
        log.info("freeze patterns %s match nothing in %s (kept for the other model)", unused, type(model).__name__)
    frozen = [
        name for name in named
        if any(fnmatch.fnmatchcase(n, p) for n in _name_prefixes(name) for p in patterns + block_patterns)
    ]
    if not frozen:
        children = ", ".join(n for n, _ in model.named_children())
        raise FinetuneConfigError(
            f"model.finetune.mode=freeze froze nothing in {type(model).__name__}: model.finetune.freeze="
            f"{patterns} and freeze_first_n_blocks={first_n_blocks} match no parameter. Its modules are: "
            f"{children} (blocks: {', '.join(blocks)})"
        )
    if len(frozen) == len(named):
        raise FinetuneConfigError(
            f"model.finetune.mode=freeze would freeze every parameter of {type(model).__name__}: "
            "narrow model.finetune.freeze or lower freeze_first_n_blocks"
        )
    for name in frozen:
        named[name].requires_grad_(False)
    return frozen


def add_lora(model: nn.Module, lora: LoraSettings) -> nn.Module:
    """``model`` wrapped by peft with LoRA adapters on ``lora.target_modules``; base weights frozen.

    The wrapper forwards attribute access (``compute_loss``, ``config``) to the base model, whose target
    ``nn.Linear`` layers are replaced in place by peft's LoRA layers.
    """
    from peft import LoraConfig, get_peft_model  # peft pulls in transformers: import only when used

    linear_names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
    child_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}
    missing = [t for t in lora.target_modules if t not in linear_names]
    if missing:
        raise FinetuneConfigError(
            f"model.finetune.lora.target_modules {missing} name no linear layer of {type(model).__name__}; "
            f"its linear layers are named {linear_names}"
        )
    missing = [t for t in lora.modules_to_save if t not in child_names]
    if missing:
        raise FinetuneConfigError(
            f"model.finetune.lora.modules_to_save {missing} name no module of {type(model).__name__}: "
            f"use names of its modules, e.g. {sorted(n for n, _ in model.named_children())}"
        )
    config = LoraConfig(
        r=int(lora.r),
        lora_alpha=lora.alpha,
        lora_dropout=float(lora.dropout),
        target_modules=list(lora.target_modules),
        modules_to_save=list(lora.modules_to_save) or None,
        bias="none",
    )
    return get_peft_model(model, config)


def published_copy(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> nn.Module:
    """A standalone published-format network holding ``weights`` (keys as in ``model.state_dict()``).

    For a LoRA model the adapters are merged into the base weights (``merge_and_unload``), so the result
    has exactly the base model's key names and no adapter tensors. ``model`` itself is left unchanged.
    """
    if is_adapted(model):
        adapted = copy.deepcopy(model).to("cpu")
        adapted.load_state_dict(weights)
        return adapted.merge_and_unload()
    export = type(model)(**model.config)
    export.load_state_dict(weights)
    return export


def optimizer_param_groups(model: nn.Module, layer_decay: float | None) -> list[dict[str, Any]]:
    """Trainable parameters of ``model`` as optimizer groups.

    Without ``layer_decay``: one group. With it: one group per depth level d carrying
    ``lr_scale = layer_decay ** (D - d)`` (D the output level), which the stage module multiplies into
    the optimizer's lr before the schedule records it.
    """
    trainable = [(name, p) for name, p in base_model(model).named_parameters() if p.requires_grad]
    if layer_decay is None:
        return [{"params": [p for _, p in trainable]}]
    levels, _, top = depth_levels(base_model(model))
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for name, param in trainable:
        groups.setdefault(_level_of(name, levels), []).append(param)
    return [
        {"params": params, "lr_scale": float(layer_decay) ** (top - level), "depth": level}
        for level, params in sorted(groups.items())
    ]
