"""Frame-level forecasting: read and window one OHLCV frame, sample, quantiles, band.

The layer under both front ends (``kronos-predict`` and the web UI), so both read files, pick history
windows, extend timestamps into the future and lay out output columns the same way. Loading a pair
is ``kronos.inference.loading``; future timestamps are ``kronos.inference.sessions``. Frames are the
DataFrames ``read_ohlcv_csv`` returns: ``timestamps`` (datetime64[ns], UTC when the file had zones),
an optional ``symbol`` column, and the six FEATURES.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from kronos.data.csv_source import banner_lines, check_header_width, read_ohlcv_csv
from kronos.data.errors import DataValidationError, clean_csv_hint, quoted
from kronos.data.ohlcv import SYMBOL_ALIASES
from kronos.data.features import FEATURES
from kronos.inference.candles import CandleRepairs
from kronos.inference.generation import cancel_when
from kronos.inference.predictor import KronosPredictor
from kronos.inference.samples import sample_quantiles
from kronos.inference.sessions import FutureIndex, future_index
from kronos.inference.settings import SamplingSettings, check_context, check_work_budget
from kronos.inference.validation import ForecastInputError
from kronos.scores import point_forecast

TIME_COLUMN = "timestamps"
CALENDAR_ROWS = 20_000  # rows before a window's end from which its sessions are learned


# ---------------------------------------------------------------- reading and windowing a frame


def read_frame(source: str | Path | bytes, name: str | None = None, *, on_nan: str = "raise") -> pd.DataFrame:
    """``read_ohlcv_csv`` of a path or uploaded bytes, where any failure to read user data is a DataValidationError.

    The reader names file, column and row for the mistakes it knows; anything else it trips over in a
    user's file (e.g. a pandas error on an odd layout) still becomes one message, not a server error.
    """
    label = name or str(source if not isinstance(source, bytes) else "<uploaded csv>")
    buffer = io.BytesIO(source) if isinstance(source, bytes) else source
    check_header_width(buffer, label)  # 200k columns: refused before pandas parses them
    _check_unique_columns(buffer, label)
    try:
        return read_ohlcv_csv(buffer, None, None, label, on_nan=on_nan)  # type: ignore[arg-type]
    except DataValidationError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, UnicodeError) as err:
        raise DataValidationError(
            f"{label}: could not be read as an OHLCV CSV ({type(err).__name__}: {err}). Check the timestamps "
            f"column (one format, one time zone) and that each column name appears once"
        ) from err


def read_long_frame(source: str | Path | bytes, name: str | None = None) -> tuple[pd.DataFrame, dict[str, int]]:
    """``read_frame``, except that a long (symbol column) file whose only fault is missing values is still read.

    Returns (frame, incomplete): the frame without its rows that have a missing value, and {symbol: rows
    dropped} for the symbols that lost rows. A symbol in ``incomplete`` must be refused by the caller
    (:func:`check_complete`); the others are intact. The shared CSI300 file has suspension-day NaNs in 34 of
    its 360 symbols, which must not make the other 326 unusable. A one-series file with a NaN is refused
    at once, with the reader's message.
    """
    try:
        return read_frame(source, name), {}
    except DataValidationError as whole_file:
        try:
            frame = read_frame(source, name, on_nan="drop")
        except DataValidationError:
            raise whole_file from None  # not (only) missing values: the first message stands
        if "symbol" not in frame.columns:
            raise whole_file from None
        raw = _raw_symbol_counts(source)
        if len(raw) == 1:
            raise whole_file from None  # one series after all: nothing else to keep usable
        kept = frame["symbol"].value_counts()
        lost = raw.sub(kept.reindex(raw.index, fill_value=0))
        return frame, {str(k): int(v) for k, v in lost[lost > 0].items()}


def check_complete(incomplete: dict[str, int], symbol: str | None, label: str) -> None:
    """Refuse ``symbol`` when :func:`read_long_frame` dropped rows of it (None: nothing chosen yet, nothing to check)."""
    if symbol is not None and symbol in incomplete:
        raise DataValidationError(
            f"{label}: symbol {quoted(symbol)} has {incomplete[symbol]} row(s) with a missing value (NaN). "
            f"{clean_csv_hint(label, symbol_column='symbol')}"
        )


def read_series(source: str | Path | bytes, symbol: str | None, name: str | None = None) -> pd.DataFrame:
    """``select_series(read_frame(source), symbol)``, where missing values in OTHER symbols of a long file
    do not block the chosen one (see :func:`read_long_frame`); the chosen series itself is still refused."""
    frame, incomplete = read_long_frame(source, name)
    check_complete(incomplete, symbol, name or str(source if not isinstance(source, bytes) else "<uploaded csv>"))
    return select_series(frame, symbol)


def _raw_symbol_counts(source: str | Path | bytes) -> pd.Series:
    """Rows per symbol in the file as written (before any row is dropped), by the first symbol alias column."""
    buffer = io.BytesIO(source) if isinstance(source, bytes) else source
    skip = banner_lines(buffer)
    if isinstance(buffer, io.BytesIO):
        buffer.seek(0)
    raw = pd.read_csv(buffer, skiprows=skip)
    names = {str(c).strip().lower(): c for c in raw.columns}
    column = next(names[a] for a in SYMBOL_ALIASES if a in names)
    # the same str conversion read_ohlcv_csv applies, so "000001" read as 1 compares equal here too
    return raw[column].astype(str).str.strip().value_counts()


def _check_unique_columns(source: str | Path | io.BytesIO, label: str) -> None:
    """Column names are matched case-insensitively, so ``close`` and ``Close`` in one file are ambiguous."""
    try:
        header = pd.read_csv(source, nrows=0).columns
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return  # the reader below reports missing and unreadable files with its own message
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)
    seen: dict[str, str] = {}
    for column in header:
        key = str(column).strip().lower()
        if key in seen:
            raise DataValidationError(
                f"{label}: columns {quoted(seen[key])} and {quoted(str(column))} name the same field (names are not case-"
                f"sensitive); keep one of them"
            )
        seen[key] = str(column)


def present_features(df: pd.DataFrame) -> list[str]:
    """The FEATURES columns ``df`` holds, in FEATURES order (volume/amount may be absent)."""
    return [c for c in FEATURES if c in df.columns]


def select_series(df: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
    """The rows of one series: ``df`` itself, or the rows of ``symbol`` in a long file with a symbol column."""
    if "symbol" not in df.columns:
        if symbol:
            raise ForecastInputError(f"symbol {quoted(symbol)} asked for, but the data has no symbol column (it is one series)")
        return df
    symbols = list(dict.fromkeys(df["symbol"]))
    if not symbol:
        if len(symbols) == 1:
            symbol = symbols[0]
        else:
            shown = ", ".join(symbols[:10]) + (" ..." if len(symbols) > 10 else "")
            raise ForecastInputError(f"the data holds {len(symbols)} symbols ({shown}): choose one")
    if symbol not in symbols:
        raise ForecastInputError(f"symbol {quoted(symbol)} is not in the data; it holds {', '.join(symbols[:10])}")
    return df.loc[df["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)


@dataclass(frozen=True)
class Window:
    """A history window cut from a frame and the actual rows that follow it (possibly fewer than H).

    ``calendar``: timestamps of the data up to the window's end (never after it), from which the
    data's sessions are learned even when the history itself is short.
    """

    history: pd.DataFrame
    actual: pd.DataFrame
    calendar: pd.Series | None = None


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
    end = start + lookback
    calendar = df[TIME_COLUMN].iloc[max(0, end - CALENDAR_ROWS) : end].reset_index(drop=True)
    return Window(history=history, actual=actual, calendar=calendar)


def resolve_start(frame: pd.DataFrame, start: str | None, lookback: int, pred_len: int) -> int:
    """Row index of the first history row.

    ``start`` is a row number, a date/time (first row at or after it; no time zone: the data's own
    clock, UTC for files that carried zones) or empty: the latest window whose whole horizon is still
    in the data, so the forecast can be scored.
    """
    if start is None or not str(start).strip():
        return max(0, len(frame) - lookback - pred_len)
    text = str(start).strip()
    example = "a row number such as 120 or a date/time such as 2024-06-18 11:15"
    if text.isascii() and text.isdecimal():  # "²".isdigit() is True, int("²") is not a number
        row = int(text)
        if row >= len(frame):
            raise ForecastInputError(f"history start row {row} is past the data's last row ({len(frame) - 1})")
        return row
    if text[:1] in "+-" and text[1:].isascii() and text[1:].isdecimal():
        # pandas reads "-5" as the year -5, i.e. silently the first row; a signed row number is a mistake
        raise ForecastInputError(f"history start {quoted(text)} is not a row number: rows count from 0 to {len(frame) - 1}")
    if not text.isascii():  # pandas reads e.g. a full-width "３" as 0001-01-03
        raise ForecastInputError(f"history start {quoted(text)} is neither a row number nor a date/time: give {example}")
    try:
        when = pd.Timestamp(text)
    except (ValueError, OverflowError, TypeError):  # OutOfBoundsDatetime is a ValueError
        raise ForecastInputError(
            f"history start {quoted(text)} is neither a row number nor a date/time in 1677..2262: give {example}"
        ) from None
    if when is pd.NaT or pd.isna(when):
        raise ForecastInputError(f"history start {quoted(text)} is not a date/time: give {example}")
    if when.tz is not None:
        raise ForecastInputError(
            f"history start {quoted(text)} has a time zone; the data's timestamps have none (files with zones are "
            f"converted to UTC): give the start without a zone, e.g. {when.tz_convert('UTC'):%Y-%m-%d %H:%M} for UTC"
        )
    ts = pd.DatetimeIndex(frame[TIME_COLUMN])
    # Compare before searching: a date outside the index's unit range (e.g. year 3000 for ns) cannot be cast to it.
    if when > ts[-1]:
        row = len(ts)
    elif when <= ts[0]:
        row = 0
    else:
        row = int(ts.searchsorted(when, side="left"))
    if row >= len(ts):
        raise ForecastInputError(
            f"history start {text} is after the data's last timestamp {ts[-1]}: choose a date up to it"
        )
    return row


# ---------------------------------------------------------------- output tables


MAX_QUANTILES = 99  # every percentile; each level adds six columns to the answer


def check_quantile_count(count: int) -> None:
    """Refuse more than MAX_QUANTILES levels, before any are parsed or computed."""
    if count > MAX_QUANTILES:
        raise ForecastInputError(f"{count:,} quantile levels asked for; at most {MAX_QUANTILES} are accepted "
                                 f"(e.g. 0.05,0.25,0.5,0.75,0.95)")


def parse_quantiles(text: str) -> tuple[float, ...]:
    """``"0.1,0.5,0.9"`` -> (0.1, 0.5, 0.9); each strictly between 0 and 1, at most MAX_QUANTILES, duplicates once."""
    check_quantile_count(text.count(",") + 1 if text.strip() else 0)
    try:
        qs = tuple(dict.fromkeys(float(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise ForecastInputError(f"quantiles must be comma-separated numbers such as 0.1,0.5,0.9, got {quoted(text)}") from None
    if not qs or any(not 0.0 < q < 1.0 for q in qs):
        raise ForecastInputError(f"quantiles must lie strictly between 0 and 1, got {quoted(text)}")
    return qs


def quantile_column(feature: str, q: float) -> str:
    """Column name of a feature's quantile, e.g. ``close_q10`` for (close, 0.1)."""
    return f"{feature}_q{q * 100:g}"


def forecast_table(paths: np.ndarray, index: pd.DatetimeIndex, quantiles: Sequence[float] = ()) -> pd.DataFrame:
    """The point forecast plus per-feature quantile columns from sample paths (raw values, not display-adjusted).

    The point forecast is the project's one definition (:func:`kronos.scores.point_forecast`, the median of the
    sample paths per step), so ``kronos-predict``, the web UI's CSV and the web UI's scores show the same numbers
    from the same paths. (``KronosPredictor.predict`` keeps the reference's mean, its documented contract.)

    Args:
        paths: float [S, H, 6] de-normalised sample paths (FEATURES order).
        index: the H future timestamps.
        quantiles: levels in (0, 1); each adds ``<feature>_q<pct>`` columns.

    Returns:
        DataFrame [H rows] with ``timestamps``, the six features (the point forecast) and quantile columns.
    """
    point = point_forecast(paths, axis=0)
    columns: dict[str, Any] = {TIME_COLUMN: index}
    columns.update({feature: point[:, j] for j, feature in enumerate(FEATURES)})
    levels = sample_quantiles(paths, quantiles) if len(quantiles) else []
    for q, level in zip(quantiles, levels):
        columns.update({quantile_column(feature, q): level[:, j] for j, feature in enumerate(FEATURES)})
    return pd.DataFrame(columns)  # built at once: adding columns one by one is quadratic in their number


def price_band(paths: np.ndarray, low: float, high: float, column: str = "close") -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper quantile of one price column across samples: paths [S, H, 6] -> two [H] arrays."""
    lower, upper = sample_quantiles(paths[:, :, FEATURES.index(column)], (low, high))
    return lower, upper


def display_candles(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose candles are drawable: high >= max(open, close) >= min(open, close) >= low.

    Averaging sample paths feature by feature breaks that order (the mean high can fall below the mean
    open); the chart widens high/low to cover the body. The CSV keeps the raw values.
    """
    out = table.copy()
    body_top = np.maximum(out["open"].to_numpy(), out["close"].to_numpy())
    body_bottom = np.minimum(out["open"].to_numpy(), out["close"].to_numpy())
    out["high"] = np.maximum(out["high"].to_numpy(), body_top)
    out["low"] = np.minimum(out["low"].to_numpy(), body_bottom)
    return out


# ---------------------------------------------------------------- one forecast


@dataclass(frozen=True)
class FrameForecast:
    """One forecast of a frame.

    history: the rows the predictor saw (the last ``max_context`` of the requested lookback);
    actual: the realised rows after the window (0..H); future: the H timestamps;
    paths: float [S, H, 6] de-normalised sample paths, every candle possible; requested_lookback: rows asked
    for; repairs: what :mod:`kronos.inference.candles` changed in the paths to make them so.
    """

    history: pd.DataFrame
    actual: pd.DataFrame
    future: FutureIndex
    paths: np.ndarray
    start_row: int
    requested_lookback: int
    repairs: CandleRepairs = CandleRepairs()

    @property
    def truncated(self) -> bool:
        """True when the lookback was longer than max_context and only its last rows were used."""
        return len(self.history) < self.requested_lookback


def plan_forecast(
    frame: pd.DataFrame,
    start_row: int,
    lookback: int,
    pred_len: int,
    settings: SamplingSettings,
    *,
    max_context: int,
    context: int | None = None,
    context_reason: str | None = None,
    budget: int | None = None,
    flag: str = "",
) -> Window:
    """Validate a request before any model work: settings, context, window and work budget; the window to forecast.

    The history is cut to its last ``max_context`` rows (the predictor never sees more), so the budget and
    memory follow what is computed, not what was typed.
    """
    settings.validate(flag)
    check_context(max_context, pred_len, context, flag, context_reason)
    window = cut_window(frame, start_row, lookback, pred_len)
    history = window.history
    if len(history) > max_context:
        history = history.iloc[-max_context:].reset_index(drop=True)
    check_work_budget(len(history), pred_len, settings.sample_count, budget, flag)
    # the future timestamps must exist (a history ending near 2262 cannot be extended): refused before model work
    future_index(history[TIME_COLUMN], pred_len, known=window.actual[TIME_COLUMN], calendar=window.calendar)
    return Window(history=history, actual=window.actual, calendar=window.calendar)


def forecast_frame(
    predictor: KronosPredictor,
    window: Window,
    pred_len: int,
    settings: SamplingSettings,
    *,
    start_row: int = 0,
    requested_lookback: int | None = None,
    cancel: Callable[[], bool] | None = None,
    known_future: bool = True,
) -> FrameForecast:
    """Sample ``settings.sample_count`` paths of ``pred_len`` rows after ``window.history``.

    Args:
        window: from :func:`plan_forecast` (history already capped at max_context).
        cancel: polled once per decoding step; generation raises GenerationCancelled when it returns True.
        known_future: use the actual rows' timestamps as the first future stamps (the web UI's scored view).
    """
    history, actual = window.history, window.actual
    future = future_index(history[TIME_COLUMN], pred_len, known=actual[TIME_COLUMN] if known_future else None,
                          calendar=window.calendar)
    with cancel_when(cancel or (lambda: False)):
        samples = predictor.predict_samples(
            df=history[present_features(history)],
            x_timestamp=history[TIME_COLUMN],
            y_timestamp=pd.Series(future.index),
            pred_len=pred_len,
            verbose=False,
            sampling=settings,
        )
    paths = np.asarray(samples.paths, dtype=np.float64)
    if not np.all(np.isfinite(paths)):
        raise ForecastInputError("the forecast holds non-finite values: check the history for extreme values")
    return FrameForecast(history, actual, future, paths, start_row, requested_lookback or len(history), samples.repairs)

