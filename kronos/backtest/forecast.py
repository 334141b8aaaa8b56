"""Forecast every (decision date, instrument) of an evaluation split in large batches.

The datamodule's decision batches are forecast by kronos.inference.decisions (sample paths in prices);
each batch is reduced at once by :func:`reduce_forecast` to one row per window, so only those rows are
kept whatever the split's size.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kronos.backtest.settings import ANCHORS
from kronos.data.transforms import LEVEL, decode
from kronos.inference.decisions import DecisionForecast, NormalizedForecaster, iter_decision_forecasts
from kronos.inference.settings import SamplingSettings


def pred_columns(horizon: int, stat: str = "close") -> list[str]:
    """Names of one per-step column family: ``pred_<stat>_1`` .. ``pred_<stat>_H`` (``close``: the mean
    of the paths' closes, ``std``: their standard deviation, ``up``: the share above the last close)."""
    return [f"pred_{stat}_{h}" for h in range(1, horizon + 1)]


# The per-path statistics of the predicted return over the headline label's interval,
# deal(t+1) -> deal(t+2) (kronos.backtest.labels): mean, std across paths, share of paths above 0.
TRADE_COLUMNS = ("trade_mean", "trade_std", "trade_up")


def summarize_paths(close: np.ndarray, deal: np.ndarray, last_close: np.ndarray) -> dict[str, np.ndarray]:
    """What the sample paths say, per window: per horizon step and over the traded interval.

    Args:
        close: de-normalised predicted closes [B, S, H].
        deal: de-normalised predicted deal prices (close or open) [B, S, H].
        last_close: the observed last close [B].

    Returns:
        {column: [B]}: ``pred_close_h`` (mean over paths), ``pred_std_h`` (std over paths, ddof 0),
        ``pred_up_h`` (share of paths whose close is above ``last_close``) for h = 1..H, and
        :data:`TRADE_COLUMNS` of the per-path return ``deal[:, :, 1] / deal[:, :, 0] - 1`` (NaN when H < 2).
    """
    horizon = close.shape[2]
    out: dict[str, np.ndarray] = {}
    for stat, values in (("close", close.mean(axis=1)), ("std", close.std(axis=1)),
                         ("up", (close > last_close[:, None, None]).mean(axis=1))):
        out.update({name: values[:, h].astype(np.float64) for h, name in enumerate(pred_columns(horizon, stat))})
    if horizon >= 2:
        trade = deal[:, :, 1].astype(np.float64) / deal[:, :, 0] - 1.0  # [B, S]
        out |= {"trade_mean": trade.mean(axis=1), "trade_std": trade.std(axis=1), "trade_up": (trade > 0).mean(axis=1)}
    else:
        out |= {name: np.full(close.shape[0], np.nan) for name in TRADE_COLUMNS}
    return out


def reconstructed_history(predictor: Any, x_hist: torch.Tensor) -> torch.Tensor:
    """The history as the model sees it: tokenised and decoded by ``predictor.tokenizer``.

    x_hist [B, L, 6] normalised -> [B, L, 6] normalised reconstruction. The tokenizer is causal, so row
    L-1 is what the forecast's own decode reproduces for the last observed candle.
    """
    tokenizer = getattr(predictor, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("backtest.anchor=reconstructed needs a predictor with a tokenizer: "
                         "use a KronosPredictor or set backtest.anchor=last_close")
    device = next(tokenizer.parameters()).device
    window = x_hist[:, -predictor.max_context:].to(device).clamp(-predictor.clip, predictor.clip)
    with torch.inference_mode():
        return tokenizer.decode_ids(*tokenizer.encode_ids(window)).float().cpu()


def reduce_forecast(forecast: DecisionForecast, close_index: int, anchor_close: np.ndarray,
                    deal_index: int | None = None) -> pd.DataFrame:
    """One row per window of ``forecast`` (B windows): the backtest's per-batch reduction of its sample paths.

    Args:
        forecast: the batch's sample paths (``paths`` [B, S, H, F] prices).
        close_index: the close column of the features.
        anchor_close: float64 [B] the close predicted returns are measured from.
        deal_index: the deal-price column (close or open; default the close): the traded interval's prices.
    Returns:
        ``datetime``, ``instrument``, ``last_close``, ``anchor_close``, ``past_return`` (close return over the
        H rows up to the decision, lookback only) and the columns of :func:`summarize_paths` (per step the
        paths' mean close ``pred_close_1..H``, std and share up; the traded interval's predicted return).
    """
    horizon = forecast.future_close.shape[1]
    hist = forecast.hist_close
    last = forecast.last_close
    past_start = max(hist.shape[1] - 1 - horizon, 0)
    frame = pd.DataFrame({
        "datetime": pd.to_datetime(forecast.datetime, unit="ns"),
        "instrument": [str(n) for n in forecast.instrument],
        "last_close": last,
        "anchor_close": np.asarray(anchor_close, dtype=np.float64),
        "past_return": last / hist[:, past_start] - 1.0,
    })
    deal_index = close_index if deal_index is None else deal_index
    paths = forecast.paths.astype(np.float64)
    summary = summarize_paths(paths[..., close_index], paths[..., deal_index], last)
    return pd.concat([frame, pd.DataFrame(summary, index=frame.index)], axis=1)


def anchor_closes(predictor: Any, forecast: DecisionForecast, close_index: int, anchor: str) -> np.ndarray:
    """float64 [B]: the observed last close (``last_close``) or the tokenizer's view of it (``reconstructed``)."""
    if anchor == "last_close":
        return forecast.last_close
    if anchor != "reconstructed":
        raise ValueError(f"backtest.anchor={anchor!r} is not one of {ANCHORS}")
    recon = reconstructed_history(predictor, torch.from_numpy(forecast.x_hist))[:, -1:].numpy()     # [B, 1, F]
    prices = decode(recon, forecast.mean, forecast.std, forecast.last_close, getattr(predictor, "normalization", LEVEL))
    return prices[:, 0, close_index].astype(np.float64)


def _select(batch: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The rows of ``batch`` where ``keep`` [B] is True."""
    idx = np.flatnonzero(keep)
    return {k: v[torch.from_numpy(idx)] if isinstance(v, torch.Tensor) else [v[i] for i in idx] for k, v in batch.items()}


def forecast_split(predictor: NormalizedForecaster, datamodule: Any, *, sampling: SamplingSettings,
                   batch_size: int, split: str = "test", start: str | pd.Timestamp | None = None,
                   end: str | pd.Timestamp | None = None, progress: bool = True,
                   anchor: str = "last_close", deal_price: str = "close") -> pd.DataFrame:
    """Forecast every (decision date, member instrument) window of one split.

    Args:
        predictor: exposes ``forecast_normalized`` (KronosPredictor; its cache setting is its own).
        datamodule: ``KronosDataModule``; its ``eval_dataloader(split, batch_size)`` batches are the
            decision windows read by kronos.inference.decisions.
        sampling: validated sampling settings (one generator from its seed draws every batch in turn).
        batch_size: windows per predictor call (inference fits far larger batches than training).
        split: which split to forecast.
        start, end: keep only decision dates in [start, end] (None: the whole split).
        progress: show a tqdm bar.
        anchor: what predicted returns are measured from: ``last_close`` (the observed last close) or
            ``reconstructed`` (the last close as the tokenizer reconstructs it; the forecast is decoded by
            the same tokenizer, so its quantisation bias cancels instead of reading as a predicted move).
        deal_price: the price field trades fill at (``close``/``open``): the traded interval's prices.

    Returns:
        Long DataFrame sorted by (datetime, instrument), the rows of :func:`reduce_forecast` (with
        the columns of :func:`summarize_paths`). Realised labels
        are not here: kronos.backtest.labels computes them from the panel by (date, instrument), so nothing
        of the future passes through the forecasting path. Only the reduced rows of each batch are kept.
    """
    if anchor not in ANCHORS:
        raise ValueError(f"backtest.anchor={anchor!r} is not one of {ANCHORS}")
    loader = datamodule.eval_dataloader(split, batch_size=batch_size)
    close_index = list(datamodule.features).index("close")
    deal_index = list(datamodule.features).index(deal_price)
    lo = pd.Timestamp(start).value if start is not None else np.iinfo(np.int64).min
    hi = pd.Timestamp(end).value if end is not None else np.iinfo(np.int64).max
    frames = []
    with tqdm(total=len(loader.dataset), desc="backtest forecasts", unit="win", disable=not progress) as bar:

        def kept() -> Iterator[Mapping[str, Any]]:
            for batch in loader:
                stamps = np.asarray(batch["datetime"], dtype=np.int64)
                keep = (stamps >= lo) & (stamps <= hi)
                bar.update(len(stamps))
                if keep.any():
                    yield _select(batch, keep)

        for forecast in iter_decision_forecasts(predictor, kept(), sampling):
            anchor_close = anchor_closes(predictor, forecast, close_index, anchor)
            frames.append(reduce_forecast(forecast, close_index, anchor_close, deal_index))
    if not frames:
        raise ValueError(f"split {split!r} has no windows between start={start} and end={end}: widen backtest.start/"
                         "end, lengthen the split or shorten data.lookback/horizon")
    return pd.concat(frames, ignore_index=True).sort_values(["datetime", "instrument"], ignore_index=True)
