"""Load a tokenizer/predictor pair (directories or hub ids) into a ready ``KronosPredictor``.

The one loader used by every consumer of trained weights: the backtest and evaluate stages, the CLI,
the web UI and the examples.
"""

from __future__ import annotations

import torch

from kronos.inference.predictor import KronosPredictor
from kronos.inference.validation import ForecastInputError
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer


def load_predictor(
    tokenizer: str,
    predictor: str,
    *,
    device: str | torch.device | None = None,
    max_context: int = 512,
    clip: float = 5.0,
    precision: str = "fp32",
) -> KronosPredictor:
    """``KronosPredictor`` over ``KronosTokenizer.from_pretrained(tokenizer)`` and ``Kronos.from_pretrained(predictor)``.

    Raises:
        CheckpointError: a missing, offline or inconsistent checkpoint (from ``from_pretrained``).
        ForecastInputError: the pair does not fit together (bit widths) or ``max_context`` is invalid.
    """
    tok = KronosTokenizer.from_pretrained(tokenizer)
    net = Kronos.from_pretrained(predictor)
    try:
        return KronosPredictor(net, tok, device=device, max_context=max_context, clip=clip,
                               precision=precision)
    except ValueError as err:  # a mismatched pair or a bad max_context: the user's choice, not a bug
        raise ForecastInputError(f"predictor {predictor} with tokenizer {tokenizer}: {err}") from err
