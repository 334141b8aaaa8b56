"""Future timestamps of a series: known rows first, then the data's own sessions, else approximate steps.

Intraday histories are extended only onto bar times and weekdays seen in them (no lunch-break or
after-close bars for A-shares, no weekend bars for daily data); exchange holidays cannot be learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos.inference.validation import ForecastInputError


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


def future_index(
    history: pd.Series, pred_len: int, known: pd.Series | None = None, calendar: pd.Series | None = None
) -> FutureIndex:
    """``pred_len`` future timestamps: the ``known`` ones first, then stamps on the data's own sessions.

    Sessions are learned from the history's time-of-day and weekday pattern (no lunch-break or after-close
    bars for A-shares, no weekend days for daily data); exchange holidays cannot be learned, so such stamps
    are marked as following sessions, not as known. A history too short or too irregular for that falls
    back to median-spacing steps, marked ``approximate``. ``calendar`` (timestamps up to the history's end,
    e.g. the whole file before the window) is where sessions are learned from when given.
    """
    try:
        return _future_index(history, pred_len, known, calendar)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        last = pd.Timestamp(pd.to_datetime(history).iloc[-1])
        raise ForecastInputError(
            f"{pred_len} future timestamp(s) after {last} would pass {pd.Timestamp.max:%Y-%m-%d}, the last date "
            f"pandas can represent: forecast fewer steps, or shift the timestamps of the data"
        ) from None


def _future_index(
    history: pd.Series, pred_len: int, known: pd.Series | None, calendar: pd.Series | None
) -> FutureIndex:
    known_ts = pd.DatetimeIndex(pd.to_datetime(known)) if known is not None else pd.DatetimeIndex([])
    known_ts = known_ts[:pred_len]
    missing = pred_len - len(known_ts)
    if missing == 0:
        return FutureIndex(known_ts, "known", "future timestamps taken from the data")
    last = known_ts[-1] if len(known_ts) else pd.Timestamp(pd.to_datetime(history).iloc[-1])
    sessions = learn_sessions(calendar if calendar is not None and len(calendar) > len(history) else history)
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
