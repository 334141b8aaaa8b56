"""A checkpoint pair as the front ends load it: swapped-pair check, trained context, device check, loading."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kronos.inference.loading import load_predictor
from kronos.inference.predictor import KronosPredictor, usable_device
from kronos.inference.validation import ForecastInputError
from kronos.models import registry
from kronos.models.hub import CheckpointError
from kronos.training_info import FILE_NAME, TrainingInfo

# config.json keys that only one of the two model kinds has: how a swapped pair is recognised.
_KIND_MARKERS = {"tokenizer": ("d_in", "n_enc_layers", "n_dec_layers"), "predictor": ("n_layers", "learn_te")}


def _local_config(location: str) -> dict | None:
    try:
        path = Path(location).expanduser() / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError, RuntimeError):
        return None


def check_pair_kinds(tokenizer: str, predictor: str) -> None:
    """Refuse a tokenizer given as the predictor (or the reverse) before loading, with one message."""
    for kind, location, other in (("predictor", predictor, "tokenizer"), ("tokenizer", tokenizer, "predictor")):
        config = _local_config(location)
        if config is None:
            continue
        if any(k in config for k in _KIND_MARKERS[other]) and not any(k in config for k in _KIND_MARKERS[kind]):
            raise ForecastInputError(
                f"the {kind} {location} is a {other} checkpoint (its config.json has "
                f"{', '.join(k for k in _KIND_MARKERS[other] if k in config)}): did you swap predictor and tokenizer?"
            )


def context_limit(predictor: str) -> tuple[int, str]:
    """The longest context ``predictor`` was trained for, and where that number comes from.

    A checkpoint exported by this project records its training window in ``training_info.json``
    (``config.data.lookback + config.data.horizon``); fine-tuning from a published model keeps that
    model's context as well. Published hub ids have their context in :mod:`kronos.models.registry`.
    Anything else gets the longest published context.
    """
    published = registry.by_predictor(predictor)
    if published is not None:
        return published.context, f"{predictor} was published with context {published.context}"
    info = TrainingInfo.read(predictor)
    window = info.window() if info is not None else None
    if info is not None and window is not None:
        start = registry.by_predictor(info.pretrained("predictor"))
        if start is not None and start.context > window:
            return start.context, f"fine-tuned from {start.predictor} (context {start.context})"
        return window, f"trained on windows of {window} rows ({FILE_NAME})"
    return registry.LONGEST_CONTEXT, "no training record: the longest published Kronos context"


def load_pair(
    tokenizer: str, predictor: str, *, device: str | torch.device | None = None, max_context: int = 512
) -> KronosPredictor:
    """``load_predictor`` after checking the pair is not swapped; a config that does not build the model is a CheckpointError."""
    check_pair_kinds(tokenizer, predictor)
    try:
        return load_predictor(tokenizer, predictor, device=device, max_context=max_context)
    except TypeError as err:  # config.json keys the model class does not take: not a checkpoint of that kind
        raise CheckpointError(
            f"predictor {predictor} / tokenizer {tokenizer}: a config.json does not fit the model ({err}); "
            f"pass a Kronos predictor and the tokenizer it was trained with"
        ) from err


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot use here (e.g. ``tpu``, or ``cuda`` without a GPU) with one message."""
    if device is not None:
        usable_device(device)