"""Decision forecasts: sample paths for a set of evaluation windows, batch by batch.

The one reader of the decision batches of :mod:`kronos.data.eval_windows` (the backtest, the evaluate
stage and the paper's tasks all forecast through it). A decision batch holds, for B windows with L
lookback rows, H horizon steps and F features:

- ``x`` float32 [B, L, F]: the lookback only, normalised with its own statistics;
- ``stamp`` int64 [B, L+H, 5] (the lookback's calendar fields, then the horizon's) and ``y_stamp``
  int64 [B, H, 5] (the horizon's, what the predictor is asked to forecast);
- ``instrument`` [B] names; ``datetime`` int64 [B] decision time (ns);
- ``mean`` / ``std`` float32 [B, F]: the lookback statistics;
- ``close`` float32 [B, L+H]: raw closes, the lookback then the realised future (NaN where missing).

:func:`iter_decision_forecasts` streams one :class:`DecisionForecast` per batch, so a consumer keeps
only what it reduces each batch to; :func:`collect_decision_forecasts` joins them when all are wanted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np
import torch

from kronos.data.features import FEATURES
from kronos.data.transforms import LEVEL, encode
from kronos.inference.candles import CandleRepairs, candle_paths
from kronos.inference.memory import release_freed_memory
from kronos.inference.settings import SamplingSettings
from kronos.inference.token_sampling import WindowDraws, window_keys

BATCH_KEYS = ("x", "stamp", "y_stamp", "instrument", "datetime", "mean", "std", "close")


class NormalizedForecaster(Protocol):
    """What decision forecasts need from a predictor (``KronosPredictor`` or a test double)."""

    def forecast_normalized(self, x: torch.Tensor, x_stamp: torch.Tensor, y_stamp: torch.Tensor,
                            sampling: SamplingSettings, *, generator: torch.Generator | None = None
                            ) -> torch.Tensor:
        """x [B,L,F], x_stamp [B,L,5], y_stamp [B,H,5] -> normalised sample paths [B,S,H,F]."""


@dataclass
class DecisionForecast:
    """The sample paths of B decision windows and what they are compared with.

    Attributes:
        paths: float32 [B, S, H, F] sample paths de-normalised to prices (features in the batch's order), every
            candle possible (:mod:`kronos.inference.candles`).
        instrument: object [B] series names; datetime: int64 [B] decision time (ns).
        x_hist: float32 [B, L, F] the normalised lookback the predictor saw.
        mean, std: float32 [B, F] the lookback statistics (of the features in the predictor's normalisation,
            :mod:`kronos.data.transforms`; ``level``: paths = z * (std + eps) + mean).
        hist_close: float64 [B, L] raw lookback closes.
        future_close: float64 [B, H] realised closes, NaN where the instrument has no row (kept apart from
            the forecast so each consumer decides what a missing future means).
        repairs: int64 [B, len(REPAIR_FIELDS)] per window, over its S paths: the candles the repair of
            :mod:`kronos.inference.candles` looked at and changed (columns ``REPAIR_FIELDS``).
    """

    paths: np.ndarray
    instrument: np.ndarray
    datetime: np.ndarray
    x_hist: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    hist_close: np.ndarray
    future_close: np.ndarray
    repairs: np.ndarray

    def __len__(self) -> int:
        return len(self.instrument)

    @property
    def last_close(self) -> np.ndarray:
        """float64 [B] the close at each decision time."""
        return self.hist_close[:, -1]

    def close_paths(self, close_index: int) -> np.ndarray:
        """float64 [B, S, H] the close of every sample path."""
        return self.paths[..., close_index].astype(np.float64)

    def candle_repairs(self) -> CandleRepairs:
        """The repair counts of every window of this forecast together."""
        return CandleRepairs.from_array(self.repairs)


def _np(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def decision_arrays(batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one decision batch, checked against the layout in the module docstring.

    Returns:
        ``x_hist`` float32 [B, L, F], ``x_stamp`` int64 [B, L, 5], ``y_stamp`` int64 [B, H, 5],
        ``hist_close`` / ``future_close`` float64 [B, L] / [B, H], ``mean`` / ``std`` float32 [B, F],
        ``instrument`` object [B], ``datetime`` int64 [B].

    Raises:
        ValueError: a key is missing or a shape does not fit (names the keys and shapes found).
    """
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(f"decision batch lacks {missing} (keys: {sorted(batch)}); build it with "
                         "kronos.data.eval_windows (datamodule.eval_dataloader)")
    x, stamp, y_stamp = _np(batch["x"]), _np(batch["stamp"]), _np(batch["y_stamp"])
    close = _np(batch["close"]).astype(np.float64)
    B, L = x.shape[:2]
    H = y_stamp.shape[1] if y_stamp.ndim == 3 else -1
    if x.ndim != 3 or y_stamp.shape[:1] != (B,) or H < 1 or stamp.shape[:2] != (B, L + H) \
            or close.shape != (B, L + H):
        raise ValueError(f"decision batch shapes x {x.shape}, stamp {stamp.shape}, y_stamp {y_stamp.shape}, close "
                         f"{close.shape} do not fit x [B,L,F], stamp [B,L+H,5], y_stamp [B,H,5], close [B,L+H]")
    if L < 2:
        raise ValueError(f"decision windows of {L} lookback rows leave nothing to forecast from (need >= 2)")
    return {
        "x_hist": x.astype(np.float32, copy=False),
        "x_stamp": stamp[:, :L].astype(np.int64, copy=False),
        "y_stamp": y_stamp.astype(np.int64, copy=False),
        "hist_close": close[:, :L],
        "future_close": close[:, L:],
        "mean": _np(batch["mean"]).astype(np.float32, copy=False),
        "std": _np(batch["std"]).astype(np.float32, copy=False),
        "instrument": np.asarray(list(batch["instrument"]), dtype=object),
        "datetime": _np(batch["datetime"]).astype(np.int64),
    }


def select_windows(batch: Mapping[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The windows of a decision batch where ``keep`` (bool [B]) is True, in the same layout."""
    idx = np.flatnonzero(keep)
    return {k: v[torch.from_numpy(idx)] if isinstance(v, torch.Tensor) else [v[i] for i in idx]
            for k, v in batch.items()}


def draws_for(predictor: NormalizedForecaster, arrays: Mapping[str, np.ndarray], sampling: SamplingSettings,
              generator: torch.Generator | None) -> torch.Generator | WindowDraws | None:
    """The randomness of one batch: per-window counter-based draws (:class:`WindowDraws`, keyed by the seed,
    instrument and decision time) when the sampling is seeded and the predictor decodes through
    ``sample_from_logits`` (``draws_per_window``); else ``generator`` (one stream for every batch in turn)."""
    if sampling.seed is None or not getattr(predictor, "draws_per_window", False):
        return generator
    return WindowDraws(window_keys(sampling.seed, arrays["instrument"], arrays["datetime"]), sampling.sample_count)


def forecast_decisions(predictor: NormalizedForecaster, batch: Mapping[str, Any], sampling: SamplingSettings,
                       generator: torch.Generator | None = None, features: Sequence[str] = FEATURES
                       ) -> DecisionForecast:
    """Sample paths for the windows of one decision batch (see :func:`iter_decision_forecasts`)."""
    a = decision_arrays(batch)
    normalization = getattr(predictor, "normalization", LEVEL)
    if "raw" in batch:  # the predictor's own normalisation, whatever the windows were built with
        enc = encode(_np(batch["raw"])[:, :a["x_hist"].shape[1]], a["x_hist"].shape[1], normalization,
                     getattr(predictor, "clip", 5.0))
        a |= {"x_hist": enc.x, "mean": enc.mean, "std": enc.std}
    B, L, F = a["x_hist"].shape
    H = a["y_stamp"].shape[1]
    generator = draws_for(predictor, a, sampling, generator)
    with torch.inference_mode():
        z = predictor.forecast_normalized(torch.from_numpy(a["x_hist"]), torch.from_numpy(a["x_stamp"]),
                                          torch.from_numpy(a["y_stamp"]), sampling, generator=generator)
    if tuple(z.shape) != (B, sampling.sample_count, H, F):
        raise ValueError(f"forecast_normalized returned shape {tuple(z.shape)}; expected "
                         f"[{B}, {sampling.sample_count}, {H}, {F}]")
    z = z.float().cpu().numpy()
    if len(features) != F:
        raise ValueError(f"decision batch has {F} features but {len(features)} names were given ({list(features)}): "
                         "pass the datamodule's features")
    paths, counts = candle_paths(z, a["mean"][:, None, :], a["std"][:, None, :], a["hist_close"][:, -1:], features,
                                 normalization, spread=float(getattr(sampling, "spread", 1.0)))
    return DecisionForecast(paths=paths, instrument=a["instrument"], datetime=a["datetime"], x_hist=a["x_hist"],
                            mean=a["mean"], std=a["std"], hist_close=a["hist_close"],
                            future_close=a["future_close"], repairs=counts.sum(axis=1))


def iter_decision_forecasts(predictor: NormalizedForecaster, batches: Iterable[Mapping[str, Any]],
                            sampling: SamplingSettings, features: Sequence[str] = FEATURES
                            ) -> Iterator[DecisionForecast]:
    """One :class:`DecisionForecast` per decision batch, in the batches' order.

    Args:
        predictor: exposes ``forecast_normalized(x, x_stamp, y_stamp, sampling, generator=...)`` (and
            ``device``, where the sampling generator lives; cpu when absent).
        batches: decision batches (``datamodule.eval_dataloader(split)`` or any iterable of that layout).
        sampling: sampling settings (validated by the predictor). Seeded, a ``KronosPredictor`` draws each
            window's paths from (seed, instrument, decision time) alone (:func:`draws_for`): the same window
            gets the same paths in any batch, order, process or resume. A predictor without per-window draws
            gets one generator made from ``sampling.seed`` that draws every batch in turn.
        features: the F feature names of the batches (``datamodule.features``), which the candle repair reads.

    After each batch is consumed the C heap's freed pages go back to the OS (:mod:`kronos.inference.memory`),
    which keeps a loop over a whole split at the memory of one batch.
    """
    generator = sampling.generator(getattr(predictor, "device", "cpu"))
    for batch in batches:
        yield forecast_decisions(predictor, batch, sampling, generator, features)
        release_freed_memory()  # the consumer is done with this batch: else the heap keeps its freed tensors


def collect_decision_forecasts(predictor: NormalizedForecaster, batches: Iterable[Mapping[str, Any]],
                               sampling: SamplingSettings, features: Sequence[str] = FEATURES) -> DecisionForecast:
    """Every batch of :func:`iter_decision_forecasts` joined into one :class:`DecisionForecast` [N, ...].

    Raises:
        ValueError: ``batches`` is empty.
    """
    parts = list(iter_decision_forecasts(predictor, batches, sampling, features))
    if not parts:
        raise ValueError("no decision batch to forecast")
    return DecisionForecast(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                               for f in fields(DecisionForecast)})
