"""One forecast as the page draws it: chart series, band, quantile fan, sample paths and metrics.

The forecasting itself (windowing, sampling, quantiles) is ``kronos.inference.frame``; this module only
lays the result out as JSON for Plotly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos.data.features import FEATURES
from kronos.inference.frame import TIME_COLUMN, FrameForecast, display_candles, forecast_table, present_features, price_band
from kronos.inference.samples import sample_quantiles
from kronos.inference.validation import ForecastInputError
from kronos.webui.metrics import score_forecast

CSV_QUANTILES = (0.1, 0.5, 0.9)
FAN_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)
MAX_DRAWN_PATHS = 64  # more lines than this only blur the fan and bloat the answer


def _series(frame: pd.DataFrame, timestamps: pd.DatetimeIndex | pd.Series) -> dict[str, list]:
    """Columns as JSON lists for Plotly: ISO timestamps plus every feature present."""
    out: dict[str, list] = {"timestamps": [t.isoformat() for t in pd.DatetimeIndex(timestamps)]}
    for col in present_features(frame):
        out[col] = [float(v) for v in frame[col].to_numpy()]
    return out


def check_band(low: float, high: float) -> None:
    """Band quantiles must satisfy 0 < low < high < 1."""
    if not 0 < low < high < 1:
        raise ForecastInputError(f"band quantiles must satisfy 0 < band_low < band_high < 1, got {low} and {high}")


def forecast_payload(
    result: FrameForecast, max_context: int, sample_count: int, band: tuple[float, float] = (0.1, 0.9)
) -> tuple[dict[str, object], pd.DataFrame]:
    """The page's JSON for one forecast and the downloadable table.

    Returns:
        payload: ``history``; ``forecast`` (mean candles, a display choice, widened so high >= max(open, close)
        and low <= min(open, close)); ``median`` (the point forecast: the per-step median, same widening); ``fan`` (close quantiles at
        FAN_LEVELS); ``paths`` (up to MAX_DRAWN_PATHS sample paths of the close); ``band``; ``actual`` and
        ``metrics`` when the data has the future; ``candle_repairs`` (what the repair of the sample paths
        changed, :class:`kronos.inference.candles.CandleRepairs`); ``window`` (what was used, truncation,
        timestamp origin).
        table: timestamps, the point forecast (median) of each feature and ``CSV_QUANTILES`` columns (not
            widened): the same table ``kronos-predict`` writes.
    """
    low, high = band
    check_band(low, high)
    history, actual, paths = result.history, result.actual, result.paths
    index = result.future.index
    table = forecast_table(paths, index, CSV_QUANTILES)
    lower, upper = price_band(paths, low, high)
    median = table[list(FEATURES)]  # the point forecast (kronos.scores.point_forecast), as the CSV holds it
    j = FEATURES.index("close")
    fan = sample_quantiles(paths[:, :, j], FAN_LEVELS)
    last_close = float(history["close"].iloc[-1])
    metrics = None
    if len(actual):
        metrics = score_forecast(last_close, paths[:, :, j], actual["close"].to_numpy(), band=(low, high))
    payload: dict[str, object] = {
        "history": _series(history, history[TIME_COLUMN]),
        "forecast": _series(display_candles(pd.DataFrame(paths.mean(axis=0), columns=list(FEATURES))), index),
        "median": _series(display_candles(median), index),
        "fan": {"levels": list(FAN_LEVELS), "close": [level.tolist() for level in fan]},
        "paths": {"close": paths[:MAX_DRAWN_PATHS, :, j].tolist(), "shown": min(len(paths), MAX_DRAWN_PATHS),
                  "total": len(paths)},
        "band": {"low": low, "high": high, "lower": lower.tolist(), "upper": upper.tolist()},
        "actual": _series(actual, actual[TIME_COLUMN]) if len(actual) else None,
        "metrics": metrics,
        "candle_repairs": result.repairs.report(),
        "window": {
            "start_row": result.start_row,
            "start": history[TIME_COLUMN].iloc[0].isoformat(),
            "end": history[TIME_COLUMN].iloc[-1].isoformat(),
            "lookback": result.requested_lookback,
            "used_rows": len(history),
            "truncated": result.truncated,
            "max_context": max_context,
            "pred_len": len(index),
            "sample_count": sample_count,
            "inferred_future_rows": len(index) - len(actual),
            "future_timestamps": result.future.kind,
            "future_note": result.future.note,
        },
    }
    return payload, table


def forecast_columns(table: pd.DataFrame) -> dict[str, list]:
    """A forecast table as JSON columns (ISO timestamps, floats) for the inline API."""
    out: dict[str, list] = {TIME_COLUMN: [t.isoformat() for t in pd.DatetimeIndex(table[TIME_COLUMN])]}
    for col in table.columns:
        if col != TIME_COLUMN:
            out[col] = [float(v) for v in np.asarray(table[col], dtype=np.float64)]
    return out
