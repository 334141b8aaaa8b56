"""Forecast every (decision date, instrument) of an evaluation split in large batches.

The datamodule's evaluation batches carry lookback-normalised decision windows and calendar stamps for
the horizon; the predictor samples normalised horizon paths, which are de-normalised with the same
lookback statistics and reduced to predicted closes, one row per window.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from kronos.backtest.settings import ANCHORS
from kronos.data.features import denormalize


class NormalizedForecaster(Protocol):
    """What the backtest needs from ``KronosPredictor``."""

    def forecast_normalized(self, x: torch.Tensor, x_stamp: torch.Tensor, y_stamp: torch.Tensor, T: float,
                            top_k: int, top_p: float, sample_count: int,
                            lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x [B,L,6], x_stamp [B,L,5], y_stamp [B,H,5] -> normalised sample paths [B,S,H,6]."""


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


def forecast_batch(predictor: NormalizedForecaster, batch: dict[str, Any], horizon: int, close_index: int, *,
                   sample_count: int, T: float, top_k: int, top_p: float,
                   anchor: str = "last_close", deal_index: int | None = None) -> pd.DataFrame:
    """Forecast one evaluation batch (``close_index``/``deal_index``: the close and deal-price columns of
    ``x``, deal defaulting to close); one row per window (see :func:`forecast_split`).

    Accepts decision batches (``x`` [B,L,F] lookback only with ``y_stamp`` [B,H,5], see
    kronos.data.eval_windows) and the older layout (``x`` [B,L+H,F], future stamps in ``stamp``).
    """
    x, stamp, close = batch["x"], batch["stamp"], batch["close"].double()
    if "y_stamp" in batch:
        lookback, y_stamp = x.shape[1], batch["y_stamp"]
    else:
        lookback = x.shape[1] - horizon
        y_stamp = stamp[:, lookback:]
    if lookback < 2:
        raise ValueError(f"evaluation windows of {x.shape[1]} rows leave no lookback before a horizon of {horizon}")
    with torch.inference_mode():
        paths = predictor.forecast_normalized(
            x[:, :lookback], stamp[:, :lookback], y_stamp,
            T=T, top_k=top_k, top_p=top_p, sample_count=sample_count, lengths=None,
        )
    if tuple(paths.shape) != (x.shape[0], sample_count, horizon, x.shape[2]):
        raise ValueError(f"forecast_normalized returned shape {tuple(paths.shape)}; expected "
                         f"[{x.shape[0]}, {sample_count}, {horizon}, {x.shape[2]}]")
    stats_mean, stats_std = batch["mean"].cpu().numpy(), batch["std"].cpu().numpy()
    raw = denormalize(paths.float().cpu().numpy(), stats_mean[:, None], stats_std[:, None])      # [B, S, H, 6]
    last = close[:, lookback - 1]
    deal_index = close_index if deal_index is None else deal_index
    if anchor == "reconstructed":
        recon = reconstructed_history(predictor, x[:, :lookback])[:, -1:].numpy()          # [B, 1, 6]
        anchor_close = denormalize(recon, stats_mean, stats_std)[:, 0, close_index]
    elif anchor == "last_close":
        anchor_close = last.numpy()
    else:
        raise ValueError(f"backtest.anchor={anchor!r} is not one of {ANCHORS}")
    # Persistence/reversal baselines need the return over the H rows up to the decision (lookback only).
    past_start = max(lookback - 1 - horizon, 0)
    frame = pd.DataFrame({
        "datetime": pd.to_datetime(np.asarray(batch["datetime"]).astype("int64"), unit="ns"),
        "instrument": list(batch["instrument"]),
        "last_close": last.numpy(),
        "anchor_close": np.asarray(anchor_close, dtype=np.float64),
        "past_return": (last / close[:, past_start] - 1.0).numpy(),
    })
    summary = summarize_paths(raw[..., close_index], raw[..., deal_index], last.numpy())
    return pd.concat([frame, pd.DataFrame(summary, index=frame.index)], axis=1)


def _select(batch: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The rows of ``batch`` where ``keep`` [B] is True."""
    idx = np.flatnonzero(keep)
    return {k: v[torch.from_numpy(idx)] if isinstance(v, torch.Tensor) else [v[i] for i in idx] for k, v in batch.items()}


def forecast_split(predictor: NormalizedForecaster, datamodule: Any, *, sample_count: int, T: float, top_k: int,
                   top_p: float, batch_size: int, split: str = "test", start: str | pd.Timestamp | None = None,
                   end: str | pd.Timestamp | None = None, progress: bool = True,
                   anchor: str = "last_close", deal_price: str = "close") -> pd.DataFrame:
    """Forecast every (decision date, member instrument) window of one split.

    Args:
        predictor: exposes ``forecast_normalized`` (KronosPredictor; its cache setting is its own).
        datamodule: ``KronosDataModule``; its ``eval_dataloader(split, batch_size)`` batches are the
            decision windows of kronos.data.eval_windows (``x`` [B,L,6], ``stamp`` [B,L+H,5],
            ``y_stamp`` [B,H,5], ``instrument``, ``datetime`` int64 ns [B], ``mean``/``std`` [B,6], raw
            ``close`` [B,L+H]).
        sample_count, T, top_k, top_p: sampling settings passed to the predictor.
        batch_size: windows per predictor call (inference fits far larger batches than training).
        split: which split to forecast.
        start, end: keep only decision dates in [start, end] (None: the whole split).
        progress: show a tqdm bar.
        anchor: what predicted returns are measured from: ``last_close`` (the observed last close) or
            ``reconstructed`` (the last close as the tokenizer reconstructs it; the forecast is decoded by
            the same tokenizer, so its quantisation bias cancels instead of reading as a predicted move).
        deal_price: the price field trades fill at (``close``/``open``): the traded interval's prices.

    Returns:
        Long DataFrame sorted by (datetime, instrument): ``datetime`` (decision time), ``instrument``,
        ``last_close``, ``anchor_close`` (the close predicted returns are measured from), ``past_return``
        (close return over the H rows up to the decision) and the columns of :func:`summarize_paths`
        (per step: mean, std and share-up of the paths' closes; the traded interval's predicted return). Realised labels are not here: kronos.backtest.labels computes them from the
        panel by (date, instrument), so nothing of the future passes through the forecasting path.
    """
    loader = datamodule.eval_dataloader(split, batch_size=batch_size)
    close_index = list(datamodule.features).index("close")
    deal_index = list(datamodule.features).index(deal_price)
    lo = pd.Timestamp(start).value if start is not None else np.iinfo(np.int64).min
    hi = pd.Timestamp(end).value if end is not None else np.iinfo(np.int64).max
    frames = []
    with tqdm(total=len(loader.dataset), desc="backtest forecasts", unit="win", disable=not progress) as bar:
        for batch in loader:
            stamps = np.asarray(batch["datetime"], dtype=np.int64)
            keep = (stamps >= lo) & (stamps <= hi)
            if keep.any():
                frames.append(forecast_batch(predictor, _select(batch, keep), datamodule.horizon, close_index,
                                             sample_count=sample_count, T=T, top_k=top_k, top_p=top_p,
                                             anchor=anchor, deal_index=deal_index))
            bar.update(len(stamps))
    if not frames:
        raise ValueError(f"split {split!r} has no windows between start={start} and end={end}: widen backtest.start/"
                         "end, lengthen the split or shorten data.lookback/horizon")
    return pd.concat(frames, ignore_index=True).sort_values(["datetime", "instrument"], ignore_index=True)
