"""One forecast for the page: window selection, sampling, chart series, band and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kronos.cli.forecast import (
    TIME_COLUMN,
    cut_window,
    forecast_table,
    future_timestamps,
    present_features,
    price_band,
)
from kronos.inference.predictor import KronosPredictor
from kronos.inference.validation import ForecastInputError
from kronos.webui.metrics import compare_with_persistence

CSV_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Sampling:
    """Generation settings passed to ``KronosPredictor.predict_samples``."""

    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sample_count: int = 8
    seed: int | None = None


def resolve_start(frame: pd.DataFrame, start: str | None, lookback: int, pred_len: int) -> int:
    """Row index of the first history row.

    ``start`` is a row number, a timestamp (first row at or after it) or empty: the latest window
    whose whole horizon is still in the data, so the forecast can be scored.
    """
    if start is None or not start.strip():
        return max(0, len(frame) - lookback - pred_len)
    text = start.strip()
    if text.isdigit():
        return int(text)
    try:
        when = pd.Timestamp(text)
    except ValueError:
        raise ForecastInputError(f"history start {text!r} is neither a row number nor a date/time such as 2024-06-18 11:15") from None
    ts = pd.DatetimeIndex(frame[TIME_COLUMN])
    if ts.tz is not None and when.tz is None:
        when = when.tz_localize(ts.tz)
    return int(ts.searchsorted(when, side="left"))


def _series(frame: pd.DataFrame, timestamps: pd.DatetimeIndex | pd.Series) -> dict[str, list]:
    """Columns as JSON lists for Plotly: ISO timestamps plus every feature present."""
    out: dict[str, list] = {"timestamps": [t.isoformat() for t in pd.DatetimeIndex(timestamps)]}
    for col in present_features(frame):
        out[col] = [float(v) for v in frame[col].to_numpy()]
    return out


def run_forecast(
    predictor: KronosPredictor,
    frame: pd.DataFrame,
    start_row: int,
    lookback: int,
    pred_len: int,
    sampling: Sampling,
    band: tuple[float, float] = (0.1, 0.9),
) -> tuple[dict[str, object], pd.DataFrame]:
    """Forecast ``pred_len`` rows after the window starting at ``start_row``.

    Returns:
        The page's payload (history, forecast mean, close band, actual future and metrics when the
        data has it, window description) and the downloadable table (mean + ``CSV_QUANTILES`` columns).
    """
    low, high = band
    if not 0 < low < high < 1:
        raise ForecastInputError(f"band quantiles must satisfy 0 < low < high < 1, got {low} and {high}")
    window = cut_window(frame, start_row, lookback, pred_len)
    history, actual = window.history, window.actual
    index = future_timestamps(history[TIME_COLUMN], pred_len, known=actual[TIME_COLUMN])
    samples = predictor.predict_samples(
        df=history[present_features(history)],
        x_timestamp=history[TIME_COLUMN],
        y_timestamp=pd.Series(index),
        pred_len=pred_len,
        T=sampling.T,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        sample_count=sampling.sample_count,
        verbose=False,
        generator=None if sampling.seed is None else torch.Generator(device=predictor.device).manual_seed(sampling.seed),
    )
    paths = np.asarray(samples.paths)  # [S, H, 6]
    table = forecast_table(paths, index, CSV_QUANTILES)
    lower, upper = price_band(paths, low, high)
    last_close = float(history["close"].iloc[-1])
    payload: dict[str, object] = {
        "history": _series(history, history[TIME_COLUMN]),
        "forecast": _series(table, index),
        "band": {"low": low, "high": high, "lower": lower.tolist(), "upper": upper.tolist()},
        "actual": _series(actual, actual[TIME_COLUMN]) if len(actual) else None,
        "metrics": compare_with_persistence(last_close, table["close"].to_numpy(), actual["close"].to_numpy())
        if len(actual)
        else None,
        "window": {
            "start_row": start_row,
            "start": history[TIME_COLUMN].iloc[0].isoformat(),
            "end": history[TIME_COLUMN].iloc[-1].isoformat(),
            "lookback": lookback,
            "pred_len": pred_len,
            "sample_count": sampling.sample_count,
            "inferred_future_rows": pred_len - len(actual),
        },
    }
    return payload, table

