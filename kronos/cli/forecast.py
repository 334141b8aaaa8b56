"""Forecasting one validated OHLCV frame with a checkpoint pair.

Shared by ``kronos-predict`` and the web UI so both pick history windows, future timestamps and
output columns the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from kronos.data.features import FEATURES
from kronos.inference.predictor import KronosPredictor
from kronos.inference.validation import ForecastInputError
from kronos.models.predictor import Kronos
from kronos.models.tokenizer import KronosTokenizer

TIME_COLUMN = "timestamps"


@dataclass(frozen=True)
class Window:
    """A history window cut from a frame and the actual rows that follow it (possibly fewer than H)."""

    history: pd.DataFrame
    actual: pd.DataFrame


def load_predictor(model: str, tokenizer: str, device: str | None = None, max_context: int = 512) -> KronosPredictor:
    """Load a predictor/tokenizer pair (local directories or hub ids) into a ``KronosPredictor``.

    Raises the models' ``CheckpointError`` for a missing, offline or inconsistent checkpoint.
    """
    tok = KronosTokenizer.from_pretrained(tokenizer)
    net = Kronos.from_pretrained(model)
    try:
        return KronosPredictor(net, tok, device=device, max_context=max_context)
    except ValueError as err:  # mismatched pair or bad max_context: the user's choice, not a bug
        raise ForecastInputError(f"predictor {model} with tokenizer {tokenizer}: {err}") from err


def present_features(df: pd.DataFrame) -> list[str]:
    """The FEATURES columns ``df`` holds, in FEATURES order (volume/amount may be absent)."""
    return [c for c in FEATURES if c in df.columns]


def select_series(df: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
    """The rows of one series: ``df`` itself, or the rows of ``symbol`` in a long file with a symbol column."""
    if "symbol" not in df.columns:
        if symbol:
            raise ForecastInputError(f"symbol {symbol!r} asked for, but the data has no symbol column (it is one series)")
        return df
    symbols = list(dict.fromkeys(df["symbol"]))
    if not symbol:
        if len(symbols) == 1:
            symbol = symbols[0]
        else:
            shown = ", ".join(symbols[:10]) + (" ..." if len(symbols) > 10 else "")
            raise ForecastInputError(f"the data holds {len(symbols)} symbols ({shown}): choose one")
    if symbol not in symbols:
        raise ForecastInputError(f"symbol {symbol!r} is not in the data; it holds {', '.join(symbols[:10])}")
    return df.loc[df["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)


def cut_window(df: pd.DataFrame, start: int, lookback: int, pred_len: int) -> Window:
    """Rows [start, start+lookback) as history and up to ``pred_len`` following rows as the actual future."""
    if lookback < 2:
        raise ForecastInputError(f"lookback must be at least 2 rows, got {lookback}")
    if pred_len < 1:
        raise ForecastInputError(f"pred_len must be at least 1, got {pred_len}")
    if start < 0 or start + lookback > len(df):
        raise ForecastInputError(
            f"a history of {lookback} rows starting at row {start} does not fit in the data's {len(df)} rows: "
            f"choose an earlier start or a shorter lookback"
        )
    history = df.iloc[start : start + lookback].reset_index(drop=True)
    actual = df.iloc[start + lookback : start + lookback + pred_len].reset_index(drop=True)
    return Window(history=history, actual=actual)


def median_spacing(timestamps: pd.Series) -> pd.Timedelta:
    """Median gap between consecutive timestamps; the step used to extend a series into the future."""
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    if len(ts) < 2:
        raise ForecastInputError("at least 2 timestamps are needed to infer the spacing of future rows")
    step = pd.Series(ts).diff().dropna().median()
    if not step > pd.Timedelta(0):
        raise ForecastInputError("timestamps do not increase: sort the data by time (python -m data_pipelines.clean_csv)")
    return step


def future_timestamps(history: pd.Series, pred_len: int, known: pd.Series | None = None) -> pd.DatetimeIndex:
    """``pred_len`` future timestamps: the ``known`` ones first, then steps of the history's median spacing.

    Median spacing ignores gaps such as nights and weekends, so inferred intraday stamps run
    through closed hours; pass the real stamps as ``known`` where the data has them.
    """
    known_ts = pd.DatetimeIndex(pd.to_datetime(known)) if known is not None else pd.DatetimeIndex([])
    known_ts = known_ts[:pred_len]
    missing = pred_len - len(known_ts)
    if missing == 0:
        return known_ts
    step = median_spacing(history)
    last = known_ts[-1] if len(known_ts) else pd.Timestamp(pd.to_datetime(history).iloc[-1])
    extra = pd.DatetimeIndex([last + step * (k + 1) for k in range(missing)])
    return known_ts.append(extra)


def parse_quantiles(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,0.9"`` -> (0.1, 0.5, 0.9); each strictly between 0 and 1."""
    try:
        qs = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ForecastInputError(f"quantiles must be comma-separated numbers such as 0.1,0.5,0.9, got {text!r}") from None
    if not qs or any(not 0.0 < q < 1.0 for q in qs):
        raise ForecastInputError(f"quantiles must lie strictly between 0 and 1, got {text!r}")
    return qs


def quantile_column(feature: str, q: float) -> str:
    """Column name of a feature's quantile, e.g. ``close_q10`` for (close, 0.1)."""
    return f"{feature}_q{q * 100:g}"


def forecast_table(paths: np.ndarray, index: pd.DatetimeIndex, quantiles: Sequence[float] = ()) -> pd.DataFrame:
    """Mean forecast plus per-feature quantile columns from sample paths.

    Args:
        paths: float [S, H, 6] de-normalised sample paths (FEATURES order).
        index: the H future timestamps.
        quantiles: levels in (0, 1); each adds ``<feature>_q<pct>`` columns.

    Returns:
        DataFrame [H rows] with ``timestamps``, the six features (mean over samples) and quantile columns.
    """
    out = pd.DataFrame({TIME_COLUMN: index})
    mean = paths.mean(axis=0)
    for j, feature in enumerate(FEATURES):
        out[feature] = mean[:, j]
    for q in quantiles:
        level = np.quantile(paths, q, axis=0)
        for j, feature in enumerate(FEATURES):
            out[quantile_column(feature, q)] = level[:, j]
    return out


def price_band(paths: np.ndarray, low: float, high: float, column: str = "close") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper quantile of one price column across samples: paths [S, H, 6] -> two [H] arrays."""
    j = FEATURES.index(column)
    return np.quantile(paths[:, :, j], low, axis=0), np.quantile(paths[:, :, j], high, axis=0)
