"""Load a tokenizer/predictor pair (directories or hub ids) into a ready ``KronosPredictor``: the one loader.

Every consumer of trained weights (the backtest and evaluate stages, the CLI, the web UI, the examples) loads
through :func:`load_predictor`, so each gets the same checks: a swapped pair is refused before loading
(:func:`check_pair_kinds`), a config that does not build the model is a ``CheckpointError``, a pair whose bit
widths disagree is a ``ForecastInputError``, and a predictor trained on another tokenizer's tokens is warned
about (:func:`pair_warning`). :func:`context_limit` and :func:`check_device` are the request checks the front
ends make against a pair.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from kronos.inference.predictor import KronosPredictor, usable_device
from kronos.inference.settings import calibration_of
from kronos.inference.validation import ForecastInputError
from kronos.models import registry
from kronos.models.hub import CheckpointError
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer
from kronos.training_info import FILE_NAME, TrainingInfo

log = logging.getLogger(__name__)
# config.json keys that only one of the two model kinds has: how a swapped pair is recognised.
_KIND_MARKERS = {"tokenizer": ("d_in", "n_enc_layers", "n_dec_layers"), "predictor": ("n_layers", "learn_te")}


def load_predictor(
    tokenizer: str,
    predictor: str,
    *,
    device: str | torch.device | None = None,
    max_context: int = 512,
    clip: float = 5.0,
    warn: bool = True,
    precision: str = "fp32",
) -> KronosPredictor:
    """``KronosPredictor`` over ``KronosTokenizer.from_pretrained(tokenizer)`` and ``Kronos.from_pretrained(predictor)``,
    with the sampling calibration recorded in the predictor's ``training_info.json`` (when there is one).

    Args:
        warn: log :func:`pair_warning` when the predictor was trained with another tokenizer (False: the caller
            reports it itself, as the evaluate stage does in its report).
    Raises:
        ForecastInputError: a swapped pair, a pair that does not fit together (bit widths) or a bad ``max_context``.
        CheckpointError: a missing, offline or inconsistent checkpoint, or a config.json the model does not take.
    """
    check_pair_kinds(tokenizer, predictor)
    try:
        tok = KronosTokenizer.from_pretrained(tokenizer)
        net = Kronos.from_pretrained(predictor)
    except TypeError as err:  # config.json keys the model class does not take: not a checkpoint of that kind
        raise CheckpointError(
            f"predictor {predictor} / tokenizer {tokenizer}: a config.json does not fit the model ({err}); "
            f"pass a Kronos predictor and the tokenizer it was trained with"
        ) from err
    try:
        loaded = KronosPredictor(net, tok, device=device, max_context=max_context, clip=clip,
                                  precision=precision)
    except ValueError as err:  # a mismatched pair or a bad max_context: the user's choice, not a bug
        raise ForecastInputError(f"predictor {predictor} with tokenizer {tokenizer}: {err}") from err
    loaded.calibration = calibration_of(predictor)  # the T chosen on validation, when the export has one
    note = pair_warning(predictor, tokenizer, predictor) if warn else None
    if note:
        log.warning("%s", note)
    return loaded


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


def _same_location(a: str, b: str) -> bool:
    """True when two checkpoint locations name the same directory (or the same hub id)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a.rstrip("/") == b.rstrip("/")


def pair_warning(name: str, tokenizer: str, predictor: str) -> str | None:
    """A warning when ``predictor``'s training_info.json says it trained on another tokenizer's tokens.

    A predictor only reads the token ids of the tokenizer it was trained with; paired with another one its
    forecasts are noise, whatever the scores say.
    """
    info = TrainingInfo.read(predictor)
    trained_on = info.tokenizer_location() if info is not None else None
    if not trained_on or _same_location(str(trained_on), tokenizer):
        return None
    return (f"{name}: the predictor {predictor} was trained on the tokens of tokenizer {trained_on}, but is "
            f"paired with tokenizer {tokenizer}; unless both hold the same weights its forecasts mean nothing. "
            f"Pair it with the tokenizer it was trained with.")


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


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot use here (e.g. ``tpu``, or ``cuda`` without a GPU) with one message."""
    if device is not None:
        usable_device(device)
