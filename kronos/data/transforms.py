"""Input normalisations: how raw candles become the model's inputs and how its outputs become candles.

The one home of the normalisation a model is trained with, used by the training windows
(:mod:`kronos.data.windows`, RAM and memory-mapped stores alike), the decision windows
(:mod:`kronos.data.eval_windows`) and every inference path (``KronosPredictor``,
:mod:`kronos.inference.decisions`). Two modes, recorded in ``training_info.json`` as ``normalization``:

- ``level`` (the reference, kept by published checkpoints): each feature's price level, normalised by
  the lookback's own mean and std. Scale-dependent: the model reads the lookback's price *range*.
- ``returns`` (scale-free, for models trained here): a causal per-row transform first,

  ====== =====================================================
  column value
  ====== =====================================================
  open   gap ``log(open / previous close)``
  high   upper wick ``log(high / max(open, close))`` (>= 0 for a valid candle)
  low    lower wick ``log(min(open, close) / low)`` (>= 0)
  close  close return ``log(close / previous close)``
  volume ``log1p(volume)``; amount ``log1p(amount)``
  ====== =====================================================

  then the same lookback-only mean/std normalisation. A window's first row has no previous close in
  the window: its previous close is its own open (gap 0), in training and inference alike. The inverse
  rebuilds prices from the last observed close, so prices are positive and wicks, volume and amount are
  non-negative by construction; a decoded negative wick or log-volume is mapped to 0 and counted.

Rows only ever depend on themselves and the row before, and the statistics on lookback rows only, so
horizon values cannot change the normalised lookback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kronos.data.features import FEATURES, NORM_EPS, lookback_stats, normalize
from kronos.errors import KronosUserError

LEVEL = "level"
RETURNS = "returns"
NORMALIZATIONS: tuple[str, ...] = (LEVEL, RETURNS)
# Counters filled by :func:`decode` in ``returns`` mode (values mapped to 0 by the inverse).
REPAIR_KEYS: tuple[str, ...] = ("negative_wick", "negative_volume")


class NormalizationError(KronosUserError, ValueError):
    """An unknown normalisation, or one the window's features cannot support."""


def check_normalization(name: str | None, features: Sequence[str] = FEATURES) -> str:
    """``name`` validated against ``features`` (None -> ``level``).

    Raises:
        NormalizationError: unknown name, or ``returns`` without the six FEATURES in their order.
    """
    name = LEVEL if name is None else str(name)
    if name not in NORMALIZATIONS:
        raise NormalizationError(f"data.normalization={name!r} is not one of {list(NORMALIZATIONS)}")
    if name == RETURNS and tuple(features) != FEATURES:
        raise NormalizationError(f"data.normalization=returns needs data.features={list(FEATURES)} (got "
                                 f"{list(features)}): its gaps and wicks are built from all six columns")
    return name


def series_transform(raw: np.ndarray, normalization: str) -> np.ndarray:
    """The per-row transform before normalising: raw [..., T, 6] -> [..., T, 6] (identity for ``level``).

    ``returns``: (gap, upper wick, lower wick, close return, log1p volume, log1p amount), see the module
    docstring; row 0's previous close is its own open. Non-finite results (a price <= 0) become 0.
    """
    if normalization == LEVEL:
        return raw
    x = np.asarray(raw, dtype=np.float64)
    o, h, lo, c = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
    prev = np.concatenate([o[..., :1], c[..., :-1]], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.stack([
            np.log(o / prev),
            np.log(h / np.maximum(o, c)),
            np.log(np.minimum(o, c) / lo),
            np.log(c / prev),
            np.log1p(np.maximum(x[..., 4], 0.0)),
            np.log1p(np.maximum(x[..., 5], 0.0)),
        ], axis=-1)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Encoded:
    """Model inputs of a batch of windows and what the inverse needs.

    Attributes:
        x: float32 [..., T, F] normalised (and clipped) inputs.
        mean, std: float32 [..., F] statistics of the lookback rows (of the transformed series).
        anchor: float64 [...] the last observed close (where ``returns`` paths start from).
    """

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    anchor: np.ndarray


def encode(raw: np.ndarray, lookback: int, normalization: str, clip: float, close_index: int = 3) -> Encoded:
    """Normalise windows of raw features with statistics of their first ``lookback`` rows only.

    Args:
        raw: float [..., T, F] raw features (T >= lookback; rows after the lookback are the horizon).
        lookback: L, the rows the statistics (and the anchor, row L-1's close) come from.
        normalization: ``level`` or ``returns``.
        clip: normalised values are clipped to [-clip, clip].
        close_index: the close column of ``raw`` (for the anchor; ``level`` with a feature subset may
            lack one, then the anchor is NaN and unused).
    """
    z = series_transform(raw, normalization)
    mean, std = lookback_stats(z[..., :lookback, :])
    raw = np.asarray(raw)
    anchor = (raw[..., lookback - 1, close_index].astype(np.float64) if raw.shape[-1] > close_index
              else np.full(raw.shape[:-2], np.nan))
    return Encoded(normalize(z, mean, std, clip), mean, std, anchor)


def decode(z: np.ndarray, mean: np.ndarray, std: np.ndarray, anchor: np.ndarray | None, normalization: str,
           counts: dict[str, int] | None = None) -> np.ndarray:
    """Normalised model outputs back to candles: z [..., H, F] -> float32 [..., H, F].

    Args:
        mean, std: [..., F] (broadcast over the H axis, e.g. [B, 1, F] for z [B, S, H, F]).
        anchor: [...] the last observed close (e.g. [B, 1]); unused for ``level``.
        counts: when given, ``returns`` adds the number of values its inverse mapped to 0 under
            :data:`REPAIR_KEYS` (``negative_wick``: decoded wicks < 0; ``negative_volume``: decoded
            log1p volume or amount < 0).
    """
    t = np.asarray(z, dtype=np.float64) * (np.asarray(std)[..., None, :] + NORM_EPS) + np.asarray(mean)[..., None, :]
    if normalization == LEVEL:
        return t.astype(np.float32)
    start = np.asarray(anchor, dtype=np.float64)[..., None]                        # [..., 1]
    close = start * np.exp(np.cumsum(t[..., 3], axis=-1))                          # [..., H]
    prev = np.concatenate([np.broadcast_to(start, close[..., :1].shape), close[..., :-1]], axis=-1)
    open_ = prev * np.exp(t[..., 0])
    wicks, logs = t[..., 1:3], t[..., 4:6]
    if counts is not None:
        counts["negative_wick"] = counts.get("negative_wick", 0) + int((wicks < 0).sum())
        counts["negative_volume"] = counts.get("negative_volume", 0) + int((logs < 0).sum())
    wicks, logs = np.maximum(wicks, 0.0), np.maximum(logs, 0.0)
    high = np.maximum(open_, close) * np.exp(wicks[..., 0])
    low = np.minimum(open_, close) * np.exp(-wicks[..., 1])
    out = np.stack([open_, high, low, close, np.expm1(logs[..., 0]), np.expm1(logs[..., 1])], axis=-1)
    return out.astype(np.float32)
