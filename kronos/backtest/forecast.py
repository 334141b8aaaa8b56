"""Forecast every (decision date, instrument) of an evaluation split in large batches.

The datamodule's decision batches are forecast by kronos.inference.decisions (sample paths in prices);
each batch is reduced at once by :func:`reduce_forecast` to one row per window, so only those rows are
kept whatever the split's size.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from kronos.backtest.settings import ANCHORS
from kronos.data.transforms import LEVEL
from kronos.inference.candles import candle_paths, repair_columns
from kronos.inference.decisions import DecisionForecast, NormalizedForecaster, iter_decision_forecasts
from kronos.inference.progress import ProgressLine
from kronos.inference.ranks import Ranks
from kronos.inference.settings import SamplingSettings
from kronos.inference.store import FillCounts, ForecastStore, fill_store


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
        paths' mean close ``pred_close_1..H``, std and share up; the traded interval's predicted return) and the
        window's candle repair counts ``repairs_<field>`` (:func:`kronos.inference.candles.repair_columns`).
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
    return pd.concat([frame, pd.DataFrame(summary | repair_columns(forecast.repairs), index=frame.index)], axis=1)


def anchor_closes(predictor: Any, forecast: DecisionForecast, features: Sequence[str], anchor: str) -> np.ndarray:
    """float64 [B]: the observed last close (``last_close``) or the tokenizer's view of it (``reconstructed``,
    de-normalised as the paths are: a reconstructed candle with a close <= 0 becomes the observed last close)."""
    if anchor == "last_close":
        return forecast.last_close
    if anchor != "reconstructed":
        raise ValueError(f"backtest.anchor={anchor!r} is not one of {ANCHORS}")
    recon = reconstructed_history(predictor, torch.from_numpy(forecast.x_hist))[:, -1:].numpy()     # [B, 1, F]
    candle, _ = candle_paths(recon, forecast.mean, forecast.std, forecast.last_close, features,
                             getattr(predictor, "normalization", LEVEL))
    return candle[:, 0, list(features).index("close")].astype(np.float64)


def _bounds(start: str | pd.Timestamp | None, end: str | pd.Timestamp | None) -> tuple[int, int]:
    """Decision times kept, [lo, hi] in ns (the whole split when None)."""
    lo = pd.Timestamp(start).value if start is not None else np.iinfo(np.int64).min
    hi = pd.Timestamp(end).value if end is not None else np.iinfo(np.int64).max
    return lo, hi


def reduce_split(predictor: Any, forecasts: Iterable[DecisionForecast], features: Sequence[str], anchor: str,
                 deal_price: str, what: str) -> pd.DataFrame:
    """The rows of :func:`reduce_forecast` of every forecast, sorted by (datetime, instrument).

    Raises:
        ValueError: an unknown anchor, or no window at all (``what`` says which split and range).
    """
    if anchor not in ANCHORS:
        raise ValueError(f"backtest.anchor={anchor!r} is not one of {ANCHORS}")
    close_index, deal_index = list(features).index("close"), list(features).index(deal_price)
    frames = [reduce_forecast(fc, close_index, anchor_closes(predictor, fc, features, anchor), deal_index)
              for fc in forecasts]
    if not frames:
        raise ValueError(f"{what} has no windows: widen backtest.start/end, lengthen the split or shorten "
                         "data.lookback/horizon")
    return pd.concat(frames, ignore_index=True).sort_values(["datetime", "instrument"], ignore_index=True)


def forecast_split(predictor: NormalizedForecaster, datamodule: Any, *, sampling: SamplingSettings,
                   batch_size: int, split: str = "test", start: str | pd.Timestamp | None = None,
                   end: str | pd.Timestamp | None = None, progress: bool = True,
                   anchor: str = "last_close", deal_price: str = "close") -> pd.DataFrame:
    """Forecast every (decision date, member instrument) window of one split, in memory (no store).

    Args:
        predictor: exposes ``forecast_normalized`` (KronosPredictor; its cache setting is its own).
        datamodule: ``KronosDataModule``; its ``eval_dataloader(split, batch_size, start, end)`` batches are
            the decision windows read by kronos.inference.decisions (the progress line counts those alone).
        sampling: validated sampling settings (seeded: each window's paths from the seed, its instrument and
            its decision time; see kronos.inference.decisions).
        batch_size: windows per predictor call (inference fits far larger batches than training).
        split: which split to forecast.
        start, end: keep only decision dates in [start, end] (None: the whole split).
        progress: print the one-line progress (kronos.inference.progress).
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
    loader = datamodule.eval_dataloader(split, batch_size=batch_size, start=start, end=end)
    bar = ProgressLine(len(loader.dataset), "backtest forecasts", enabled=progress)
    ticked = _ticking(loader, bar)
    frame = reduce_split(predictor, iter_decision_forecasts(predictor, ticked, sampling, datamodule.features),
                         datamodule.features,
                         anchor, deal_price, f"split {split!r} between start={start} and end={end}")
    bar.close()
    return frame


def _ticking(batches: Iterable[Mapping[str, Any]], bar: ProgressLine) -> Iterator[Mapping[str, Any]]:
    """The batches, counting each one's windows on ``bar`` once it has been consumed."""
    for batch in batches:
        yield batch
        bar.update(len(batch["instrument"]))


def fill_split(predictor: Any, datamodule: Any, store: ForecastStore, *, sampling: SamplingSettings,
               batch_size: int, split: str = "test", start: str | pd.Timestamp | None = None,
               end: str | pd.Timestamp | None = None, ranks: Ranks | None = None, progress: bool = True,
               anchor: str = "last_close", deal_price: str = "close") -> FillCounts:
    """Forecast the windows of ``split`` in [start, end] that ``store`` lacks (every rank calls this, each
    forecasts its share; see :func:`kronos.inference.store.fill_store`). ``anchor``/``deal_price`` are
    accepted for a call shaped like :func:`forecast_split` and do not change what is stored."""
    loader = datamodule.eval_dataloader(split, batch_size=batch_size, start=start, end=end)
    bar = ProgressLine(len(loader.dataset), "backtest forecasts", enabled=progress)
    counts = fill_store(store, predictor, loader, sampling,
                        features=datamodule.features, ranks=ranks, progress=bar)
    bar.close()
    return counts


def read_split(predictor: Any, datamodule: Any, store: ForecastStore, *, sampling: SamplingSettings,
               batch_size: int, split: str = "test", start: str | pd.Timestamp | None = None,
               end: str | pd.Timestamp | None = None, anchor: str = "last_close",
               deal_price: str = "close") -> pd.DataFrame:
    """The rows of :func:`forecast_split` read back from a filled ``store`` (in batches of ``batch_size``),
    keeping decision times in [start, end]."""
    lo, hi = _bounds(start, end)
    stream = store.read(batch_size, keep=lambda fc: (fc.datetime >= lo) & (fc.datetime <= hi))
    return reduce_split(predictor, stream, datamodule.features, anchor, deal_price,
                        f"split {split!r} between start={start} and end={end}")
