"""The published Kronos models: the one place their facts live.

Hub ids, sizes, the context each predictor was trained with, the end of its pretraining data and the
tokenizer it pairs with (KRONOS_SPEC.md, the model cards). Read by the model configs
(``conf/model/{mini,small,base}.yaml`` through the ``published`` OmegaConf resolver, e.g.
``${published:small,predictor}``), by the inference front ends (the trained context of a hub id) and
the web UI (its hub choices), and by the evaluate stage (the pretraining cutoff of published weights).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf


@dataclass(frozen=True)
class PublishedModel:
    """One published predictor and the tokenizer it was released with.

    Attributes:
        name: display name (``Kronos-small``).
        config: the model config that has its shape (``conf/model/<config>.yaml``).
        predictor, tokenizer: hub ids.
        parameters: predictor parameter count, as published (``24.7M``).
        context: the context (rows) the predictor was trained with.
        data_end: last date of its pretraining data (the evaluate stage warns on overlap).
    """

    name: str
    config: str
    predictor: str
    tokenizer: str
    parameters: str
    context: int
    data_end: str


PUBLISHED: tuple[PublishedModel, ...] = (
    PublishedModel("Kronos-mini", "mini", "NeoQuasar/Kronos-mini", "NeoQuasar/Kronos-Tokenizer-2k", "4.1M", 2048,
                   "2024-06-30"),
    PublishedModel("Kronos-small", "small", "NeoQuasar/Kronos-small", "NeoQuasar/Kronos-Tokenizer-base", "24.7M", 512,
                   "2024-06-30"),
    PublishedModel("Kronos-base", "base", "NeoQuasar/Kronos-base", "NeoQuasar/Kronos-Tokenizer-base", "102.3M", 512,
                   "2024-06-30"),
)
# A local checkpoint without a training record is allowed the longest published context.
LONGEST_CONTEXT = max(m.context for m in PUBLISHED)


def by_predictor(location: str | None) -> PublishedModel | None:
    """The published model whose predictor hub id is ``location`` (None for anything else)."""
    if not location:
        return None
    return next((m for m in PUBLISHED if m.predictor == str(location).rstrip("/")), None)


def by_config(config: str) -> PublishedModel:
    """The published model of a model config name (``mini``, ``small``, ``base``)."""
    for m in PUBLISHED:
        if m.config == config:
            return m
    raise KeyError(f"no published model for model config {config!r}: known {[m.config for m in PUBLISHED]}")


def _resolve(config: str, field: str) -> object:
    """``${published:<config>,<field>}`` in the model configs."""
    model = by_config(config)
    if not hasattr(model, field):
        raise KeyError(f"${{published:{config},{field}}}: no field {field!r} (use one of {list(model.__dict__)})")
    return getattr(model, field)


if not OmegaConf.has_resolver("published"):
    OmegaConf.register_new_resolver("published", _resolve)
