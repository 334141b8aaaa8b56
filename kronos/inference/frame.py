"""Frame-level forecasting: load a checkpoint pair, window one OHLCV frame, sample, quantiles, band.

The layer under both front ends (``kronos-predict`` and the web UI), so both read files, pick history
windows, extend timestamps into the future and lay out output columns the same way. Frames are the
DataFrames ``read_ohlcv_csv`` returns: ``timestamps`` (datetime64[ns], UTC when the file had zones),
an optional ``symbol`` column, and the six FEATURES.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from kronos.data.csv_source import read_ohlcv_csv
from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES
from kronos.inference.generation import cancel_when
from kronos.inference.loading import load_predictor
from kronos.inference.predictor import KronosPredictor
from kronos.inference.samples import sample_quantiles
from kronos.inference.settings import SamplingSettings, check_work_budget
from kronos.inference.validation import ForecastInputError
from kronos.models.hub import CheckpointError

TIME_COLUMN = "timestamps"
# Context each published predictor was trained with (KRONOS_SPEC.md); a local checkpoint without a
# training record is allowed the longest of them.
PUBLISHED_CONTEXT = {"NeoQuasar/Kronos-mini": 2048, "NeoQuasar/Kronos-small": 512, "NeoQuasar/Kronos-base": 512}
LONGEST_PUBLISHED_CONTEXT = max(PUBLISHED_CONTEXT.values())
# config.json keys that only one of the two model kinds has: how a swapped pair is recognised.
_KIND_MARKERS = {"tokenizer": ("d_in", "n_enc_layers", "n_dec_layers"), "predictor": ("n_layers", "learn_te")}


# ---------------------------------------------------------------- reading and windowing a frame


def read_frame(source: str | Path | bytes, name: str | None = None) -> pd.DataFrame:
    """``read_ohlcv_csv`` of a path or uploaded bytes, where any failure to read user data is a DataValidationError.

    The reader names file, column and row for the mistakes it knows; anything else it trips over in a
    user's file (e.g. a pandas error on an odd layout) still becomes one message, not a server error.
    """
    label = name or str(source if not isinstance(source, bytes) else "<uploaded csv>")
    buffer = io.BytesIO(source) if isinstance(source, bytes) else source
    _check_unique_columns(buffer, label)
    try:
        return read_ohlcv_csv(buffer, None, None, label)
    except DataValidationError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, UnicodeError) as err:
        raise DataValidationError(
            f"{label}: could not be read as an OHLCV CSV ({type(err).__name__}: {err}). Check the timestamps "
            f"column (one format, one time zone) and that each column name appears once"
        ) from err


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
                f"{label}: columns {seen[key]!r} and {str(column)!r} name the same field (names are not case-"
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


@dataclass(frozen=True)
class Window:
    """A history window cut from a frame and the actual rows that follow it (possibly fewer than H)."""

    history: pd.DataFrame
    actual: pd.DataFrame


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
    if not text.isascii():  # pandas reads e.g. a full-width "３" as 0001-01-03
        raise ForecastInputError(f"history start {text!r} is neither a row number nor a date/time: give {example}")
    try:
        when = pd.Timestamp(text)
    except (ValueError, OverflowError, TypeError):  # OutOfBoundsDatetime is a ValueError
        raise ForecastInputError(
            f"history start {text!r} is neither a row number nor a date/time in 1677..2262: give {example}"
        ) from None
    if when is pd.NaT or pd.isna(when):
        raise ForecastInputError(f"history start {text!r} is not a date/time: give {example}")
    if when.tz is not None:
        raise ForecastInputError(
            f"history start {text!r} has a time zone; the data's timestamps have none (files with zones are "
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


# ---------------------------------------------------------------- future timestamps


def median_spacing(timestamps: pd.Series | pd.DatetimeIndex) -> pd.Timedelta:
    """Median gap between consecutive timestamps; the step used to extend a series into the future."""
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    if len(ts) < 2:
        raise ForecastInputError("at least 2 timestamps are needed to infer the spacing of future rows")
    step = pd.Series(ts).diff().dropna().median()
    if not step > pd.Timedelta(0):
        raise ForecastInputError("timestamps do not increase: sort the data by time (python -m data_pipelines.clean_csv)")
    return step


@dataclass(frozen=True)
class Sessions:
    """When the data has bars: its step, the times of day and the weekdays seen in the history."""

    step: pd.Timedelta
    times: np.ndarray  # int64 [K] sorted nanoseconds since midnight
    weekdays: frozenset[int]  # 0 = Monday

    def describe(self) -> str:
        """E.g. ``Mon–Fri, 09:35–11:30 and 13:05–15:00`` (the runs of consecutive bars)."""
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        days = sorted(self.weekdays)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            day_text = f"{names[days[0]]}–{names[days[-1]]}"
        else:
            day_text = ", ".join(names[d] for d in days)
        if self.step >= pd.Timedelta(days=1):
            return f"trading days {day_text}"
        step_ns = self.step.value
        runs, begin = [], self.times[0]
        for prev, cur in zip(self.times[:-1], self.times[1:]):
            if cur - prev != step_ns:
                runs.append((begin, prev))
                begin = cur
        runs.append((begin, self.times[-1]))
        if len(runs) == 1 and len(self.times) * step_ns >= 86_400 * 10**9:
            return f"{day_text}, around the clock"
        clock = lambda ns: f"{int(ns // 3_600_000_000_000):02d}:{int(ns // 60_000_000_000 % 60):02d}"  # noqa: E731
        if len(runs) > 4:
            return f"{day_text}, {len(self.times)} bar times a day"
        return f"{day_text}, " + " and ".join(f"{clock(a)}–{clock(b)}" for a, b in runs)


def learn_sessions(history: pd.Series | pd.DatetimeIndex) -> Sessions | None:
    """The bar times and weekdays of a history, or None when it is too short to tell (< 7 days spanned)."""
    ts = pd.DatetimeIndex(pd.to_datetime(history)).as_unit("ns")  # times below are int64 nanoseconds
    if len(ts) < 2 or ts[-1] - ts[0] < pd.Timedelta(days=7):
        return None
    step = median_spacing(ts)
    midnight = ts.normalize()
    times = np.unique((ts - midnight).asi8)
    return Sessions(step=step, times=times, weekdays=frozenset(int(d) for d in np.unique(ts.dayofweek)))


@dataclass(frozen=True)
class FutureIndex:
    """Future timestamps and how they were obtained.

    kind: ``known`` (all from the data), ``sessions`` (extended along the learned sessions),
    or ``approximate`` (last stamp + multiples of the median spacing, running through closed hours).
    """

    index: pd.DatetimeIndex
    kind: str
    note: str


def future_index(history: pd.Series, pred_len: int, known: pd.Series | None = None) -> FutureIndex:
    """``pred_len`` future timestamps: the ``known`` ones first, then stamps on the data's own sessions.

    Sessions are learned from the history's time-of-day and weekday pattern (no lunch-break or after-close
    bars for A-shares, no weekend days for daily data); exchange holidays cannot be learned, so such stamps
    are marked as following sessions, not as known. A history too short or too irregular for that falls
    back to median-spacing steps, marked ``approximate``.
    """
    known_ts = pd.DatetimeIndex(pd.to_datetime(known)) if known is not None else pd.DatetimeIndex([])
    known_ts = known_ts[:pred_len]
    missing = pred_len - len(known_ts)
    if missing == 0:
        return FutureIndex(known_ts, "known", "future timestamps taken from the data")
    last = known_ts[-1] if len(known_ts) else pd.Timestamp(pd.to_datetime(history).iloc[-1])
    sessions = learn_sessions(history)
    if sessions is not None:
        extra = _session_stamps(last, missing, sessions)
        if extra is not None:
            note = (f"{missing} future timestamp(s) follow the data's sessions ({sessions.describe()}); "
                    "exchange holidays are not known")
            return FutureIndex(known_ts.append(extra), "sessions", note)
    step = median_spacing(history)
    extra = pd.DatetimeIndex([last + step * (k + 1) for k in range(missing)])
    note = (f"{missing} future timestamp(s) are approximate: last timestamp plus multiples of the median spacing "
            f"({step}); closed hours are not skipped")
    return FutureIndex(known_ts.append(extra), "approximate", note)


def _session_stamps(last: pd.Timestamp, count: int, sessions: Sessions) -> pd.DatetimeIndex | None:
    """``count`` stamps after ``last`` on the step grid that fall on a seen weekday and bar time (None if none fit)."""
    chunk = 4096
    found: list[pd.DatetimeIndex] = []
    n_found, offset = 0, 1
    # A gap longer than four weeks of steps without one valid bar means the grid never meets the sessions.
    limit = count + int(pd.Timedelta(days=28) / sessions.step) + chunk
    while n_found < count and offset < limit:
        candidates = pd.DatetimeIndex(last + sessions.step * np.arange(offset, offset + chunk)).as_unit("ns")
        tod = (candidates - candidates.normalize()).asi8
        ok = np.isin(tod, sessions.times) & np.isin(candidates.dayofweek, list(sessions.weekdays))
        found.append(candidates[ok])
        n_found += int(ok.sum())
        offset += chunk
    if n_found < count:
        return None
    return found[0].append(found[1:])[:count] if len(found) > 1 else found[0][:count]


def future_timestamps(history: pd.Series, pred_len: int, known: pd.Series | None = None) -> pd.DatetimeIndex:
    """The timestamps of :func:`future_index` alone."""
    return future_index(history, pred_len, known).index


# ---------------------------------------------------------------- output tables


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
    """Mean forecast plus per-feature quantile columns from sample paths (raw values, not display-adjusted).

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
    levels = sample_quantiles(paths, quantiles) if len(quantiles) else []
    for q, level in zip(quantiles, levels):
        for j, feature in enumerate(FEATURES):
            out[quantile_column(feature, q)] = level[:, j]
    return out


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


# ---------------------------------------------------------------- checkpoints


def _local_config(location: str) -> dict | None:
    path = Path(location).expanduser() / "config.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def check_pair_kinds(tokenizer: str, predictor: str) -> None:
    """Refuse a tokenizer given as the predictor (or the reverse) before loading, with one message."""
    for kind, location, other in (("predictor", predictor, "tokenizer"), ("tokenizer", tokenizer, "predictor")):
        config = _local_config(location)
        if config is None:
            continue
        if any(k in config for k in _KIND_MARKERS[other]) and not any(k in config for k in _KIND_MARKERS[kind]):
            raise ForecastInputError(
                f"the {kind} {location} is a {other} checkpoint (its config.json has "
                f"{', '.join(k for k in _KIND_MARKERS[other] if k in config)}): did you swap predictor and tokenizer?"
            )


def context_limit(predictor: str) -> tuple[int, str]:
    """The longest context ``predictor`` was trained for, and where that number comes from.

    A checkpoint exported by this project records its training window in ``training_info.json``
    (``config.data.lookback + config.data.horizon``); fine-tuning from a published model keeps that
    model's context as well. Published hub ids have known contexts. Anything else gets the longest
    published context.
    """
    if predictor in PUBLISHED_CONTEXT:
        return PUBLISHED_CONTEXT[predictor], f"{predictor} was published with context {PUBLISHED_CONTEXT[predictor]}"
    info_path = Path(predictor).expanduser() / "training_info.json"
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
    except (OSError, ValueError):
        info = None
    data = (info or {}).get("config", {}).get("data", {}) if isinstance(info, dict) else {}
    if isinstance(data, dict) and isinstance(data.get("lookback"), int) and isinstance(data.get("horizon"), int):
        window = data["lookback"] + data["horizon"]
        start = (info.get("config", {}).get("model", {}).get("predictor", {}) or {}).get("pretrained")
        if start in PUBLISHED_CONTEXT and PUBLISHED_CONTEXT[start] > window:
            return PUBLISHED_CONTEXT[start], f"fine-tuned from {start} (context {PUBLISHED_CONTEXT[start]})"
        return window, f"trained on windows of {window} rows (training_info.json)"
    return LONGEST_PUBLISHED_CONTEXT, "no training record: the longest published Kronos context"


def load_pair(
    tokenizer: str, predictor: str, *, device: str | torch.device | None = None, max_context: int = 512
) -> KronosPredictor:
    """``load_predictor`` after checking the pair is not swapped; a config that does not build the model is a CheckpointError."""
    check_pair_kinds(tokenizer, predictor)
    try:
        return load_predictor(tokenizer, predictor, device=device, max_context=max_context)
    except TypeError as err:  # config.json keys the model class does not take: not a checkpoint of that kind
        raise CheckpointError(
            f"predictor {predictor} / tokenizer {tokenizer}: a config.json does not fit the model ({err}); "
            f"pass a Kronos predictor and the tokenizer it was trained with"
        ) from err


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot use here (e.g. ``tpu``, or ``cuda`` without a GPU) with one message."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ForecastInputError(f"device {device!r} is not a torch device: use cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ForecastInputError(f"device {device} asked for, but torch sees no CUDA GPU: use cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ForecastInputError(f"device {device} asked for, but MPS is not available here: use cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ForecastInputError(f"device {device!r} is not supported: use cpu, cuda, cuda:1 or mps")


# ---------------------------------------------------------------- one forecast


@dataclass(frozen=True)
class FrameForecast:
    """One forecast of a frame.

    history: the rows the predictor saw (the last ``max_context`` of the requested lookback);
    actual: the realised rows after the window (0..H); future: the H timestamps;
    paths: float [S, H, 6] de-normalised sample paths; requested_lookback: rows asked for.
    """

    history: pd.DataFrame
    actual: pd.DataFrame
    future: FutureIndex
    paths: np.ndarray
    start_row: int
    requested_lookback: int

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
    context: int | None = None,
    context_reason: str | None = None,
    budget: int | None = None,
    flag: str = "",
) -> Window:
    """Validate a request before any model work: settings, window and work budget; the window to forecast.

    The history is cut to its last ``max_context`` rows (the predictor never sees more), so the budget and
    memory follow what is computed, not what was typed.
    """
    settings.validate(pred_len, context, flag, context_reason)
    window = cut_window(frame, start_row, lookback, pred_len)
    history = window.history
    if len(history) > settings.max_context:
        history = history.iloc[-settings.max_context:].reset_index(drop=True)
    check_work_budget(len(history), pred_len, settings.sample_count, budget, flag)
    return Window(history=history, actual=window.actual)


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
    future = future_index(history[TIME_COLUMN], pred_len, known=actual[TIME_COLUMN] if known_future else None)
    with cancel_when(cancel or (lambda: False)):
        samples = predictor.predict_samples(
            df=history[present_features(history)],
            x_timestamp=history[TIME_COLUMN],
            y_timestamp=pd.Series(future.index),
            pred_len=pred_len,
            T=settings.T,
            top_k=settings.top_k,
            top_p=settings.top_p,
            sample_count=settings.sample_count,
            verbose=False,
            generator=settings.generator(predictor.device),
        )
    paths = np.asarray(samples.paths, dtype=np.float64)
    if not np.all(np.isfinite(paths)):
        raise ForecastInputError("the forecast holds non-finite values: check the history for extreme values")
    return FrameForecast(history, actual, future, paths, start_row, requested_lookback or len(history))

