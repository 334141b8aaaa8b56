"""Decision windows for evaluation (backtest, evaluate): built from the lookback alone, no peeking.

A decision at time t needs only the L rows of history up to t. Whether the instrument still trades
after t is unknown at t, so it never decides whether a window exists: a stock about to stop trading
keeps its signal, and its realised future is simply missing (NaN) in the batch. The forecast's time
stamps come from the trading calendar (the panel's common calendar, extended past its end by the
data's frequency), never from the stock's own future rows (whose gaps would leak a coming suspension).

Batch layout (``EvalWindowDataset``; every consumer reads these keys):

- ``x`` float32 [B, L, F]: the lookback, normalised with its own statistics and clipped, in the store's
  ``normalization`` (:mod:`kronos.data.transforms`; the forecast re-encodes ``raw`` in its predictor's).
- ``stamp`` int64 [B, L+H, 5]: calendar fields of the lookback rows, then of the next H calendar steps.
- ``y_stamp`` int64 [B, H, 5]: ``stamp[:, L:]``, what the predictor is asked to forecast.
- ``instrument`` list[str] [B]; ``datetime`` int64 [B] (decision time, ns).
- ``mean`` / ``std`` float32 [B, F]: the lookback statistics of the (transformed) features.
- ``close`` float32 [B, L+H]: raw closes, the lookback then the next H calendar steps; NaN where the
  instrument has no row at a future step (suspended, delisted, or past the end of the data).
- ``raw`` float32 [B, L+H, F]: the raw (unnormalised, unclipped) features on the same rows as ``close``
  (NaN at the same missing future steps), for scores of whole candles (the evaluate stage's tasks).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from kronos.data.features import time_features
from kronos.data.transforms import LEVEL, encode


def extend_calendar(calendar: np.ndarray, steps: int) -> np.ndarray:
    """``calendar`` (sorted datetime64[ns] [D]) followed by ``steps`` further steps at the data's frequency.

    Daily-or-slower data without weekend dates is extended by business days, other daily data by
    calendar days, intraday data by the most common spacing of consecutive timestamps.

    Returns:
        datetime64[ns] [D + steps].
    """
    cal = pd.DatetimeIndex(np.asarray(calendar, dtype="datetime64[ns]"))
    if steps <= 0:
        return cal.to_numpy()
    if len(cal) < 2:
        step = pd.Timedelta(days=1)
        extra = pd.date_range(cal[-1] + step, periods=steps, freq=step) if len(cal) else pd.DatetimeIndex([])
        return cal.append(extra).to_numpy()
    diffs = pd.Series(np.diff(cal.asi8))
    step_ns = int(diffs.mode().iloc[0])
    if step_ns >= pd.Timedelta(days=1).value:
        offset = pd.offsets.BDay(1) if (cal.weekday < 5).all() else pd.offsets.Day(1)
        extra = pd.date_range(cal[-1] + offset, periods=steps, freq=offset)
        # Keep the time of day of the data's stamps (e.g. 15:00 daily bars).
        extra = extra.normalize() + (cal[-1] - cal[-1].normalize())
    else:
        extra = pd.DatetimeIndex(cal[-1] + pd.Timedelta(step_ns, "ns") * np.arange(1, steps + 1))
    return cal.append(extra).to_numpy().astype("datetime64[ns]")


class DecisionWindows:
    """Every possible decision (instrument, last lookback row) of a window store, and batch gathering.

    Works on the in-RAM and the memory-mapped store alike and never holds a per-row array of its own:
    calendar positions are looked up per batch. Series sharing a calendar form a group (a mixture's
    component, or the whole store); future stamps come from the decision's own group's calendar.

    Args:
        store: a ``WindowStore``: ``values`` [N, F_src] (columns ``source_features`` when present, else the
            features), ``times`` int64 [N] ns, ``stamps`` [N, 5], ``close`` [N], ``member`` bool [N] or None,
            ``offsets`` [I+1], ``instruments`` [I], ``lookback``, ``horizon``, ``clip``, ``features`` and
            optionally ``groups`` (``start``, ``stop``, ``calendar`` int64 ns).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lookback, self.horizon = int(store.lookback), int(store.horizon)
        source = tuple(getattr(store, "source_features", ()) or ())
        features = tuple(getattr(store, "features", ()) or ())
        self.cols = [source.index(f) for f in features] if source and features and source != features else None
        groups = getattr(store, "groups", None)
        if groups:
            spans = [(int(g.start), int(g.stop), np.asarray(g.calendar, dtype=np.int64)) for g in groups]
        else:
            spans = [(0, len(store.offsets) - 1, np.unique(np.asarray(store.times, dtype=np.int64)))]
        self.group_start = np.array([a for a, _, _ in spans], dtype=np.int64)           # [G] first series
        self.calendars = [cal for _, _, cal in spans]                                     # [G] int64 [D_g]
        self.calendar_stamps = [time_features(extend_calendar(cal.astype("datetime64[ns]"), self.horizon))
                                for cal in self.calendars]                                # [G] [D_g + H, 5]
        self.spans = [(a, b) for a, b, _ in spans]

    def select(self, bounds: Sequence[tuple[int, int]], members_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Decisions whose time is in the group's [start, end] ns (``bounds``: one pair per group) and that
        have a full lookback; with ``members_only``, only where the instrument is a universe member at
        the decision (no effect without membership data).

        Returns:
            (instrument index int64 [W], global row of the decision int64 [W]), sorted by decision
            time, then instrument.
        """
        s = self.store
        inst_all, row_all = [], []
        for (lo_series, hi_series), (start, end) in zip(self.spans, bounds):
            for i in range(lo_series, hi_series):
                first, stop = int(s.offsets[i]) + self.lookback - 1, int(s.offsets[i + 1])
                if stop <= first:
                    continue
                t = np.asarray(s.times[first:stop], dtype=np.int64)
                lo, hi = int(np.searchsorted(t, start, side="left")), int(np.searchsorted(t, end, side="right"))
                if hi <= lo:
                    continue
                rows = np.arange(first + lo, first + hi, dtype=np.int64)
                if members_only and s.member is not None:
                    rows = rows[np.asarray(s.member[first + lo:first + hi], dtype=bool)]
                inst_all.append(np.full(len(rows), i, dtype=np.int64))
                row_all.append(rows)
        inst = np.concatenate(inst_all) if inst_all else np.zeros(0, np.int64)
        row = np.concatenate(row_all) if row_all else np.zeros(0, np.int64)
        order = np.lexsort((inst, np.asarray(s.times[row], dtype=np.int64) if len(row) else row))
        return inst[order], row[order]

    def gather(self, inst: np.ndarray, row: np.ndarray) -> dict[str, Any]:
        """The batch of decisions (``inst``, ``row``) int64 [B]; keys and shapes in the module docstring."""
        s, L, H = self.store, self.lookback, self.horizon
        hist = (row - L + 1)[:, None] + np.arange(L)                                    # [B, L] rows
        raw = np.asarray(s.values[hist], dtype=np.float32)
        if self.cols is not None:
            raw = raw[..., self.cols]
        enc = encode(raw, L, getattr(s, "normalization", LEVEL), s.clip)
        group = np.searchsorted(self.group_start, inst, side="right") - 1                # [B]
        times = np.asarray(s.times[row], dtype=np.int64)
        cal_pos = np.empty(len(row), np.int64)
        future_stamps = np.empty((len(row), H, 5), np.int64)
        for g in np.unique(group):
            sel = group == g
            cal_pos[sel] = np.searchsorted(self.calendars[g], times[sel])
            future_stamps[sel] = self.calendar_stamps[g][cal_pos[sel][:, None] + np.arange(1, H + 1)]
        stamp = np.concatenate([np.asarray(s.stamps[hist], dtype=np.int64), future_stamps], axis=1)
        future_row = self._future_rows(inst, row, group, cal_pos)                       # [B, H], -1 missing
        there = future_row >= 0
        future_close = np.full(future_row.shape, np.nan, dtype=np.float32)
        future_close[there] = np.asarray(s.close[future_row[there]], dtype=np.float32)
        future_raw = np.full((*future_row.shape, raw.shape[-1]), np.nan, dtype=np.float32)
        if there.any():
            values = np.asarray(s.values[future_row[there]], dtype=np.float32)
            future_raw[there] = values[:, self.cols] if self.cols is not None else values
        close = np.concatenate([np.asarray(s.close[hist], dtype=np.float32), future_close], axis=1)
        return {
            "x": torch.from_numpy(enc.x),
            "stamp": torch.from_numpy(stamp),
            "y_stamp": torch.from_numpy(np.ascontiguousarray(stamp[:, L:])),
            "instrument": [str(n) for n in np.asarray(s.instruments)[inst]],
            "datetime": torch.from_numpy(times),
            "mean": torch.from_numpy(enc.mean),
            "std": torch.from_numpy(enc.std),
            "close": torch.from_numpy(close),
            "raw": torch.from_numpy(np.concatenate([raw, future_raw], axis=1)),
        }

    def _future_rows(self, inst: np.ndarray, row: np.ndarray, group: np.ndarray, cal_pos: np.ndarray) -> np.ndarray:
        """int64 [B, H]: the store row at calendar step c+h (c = the decision's calendar index), -1 where
        the instrument has no row there. Rows are sorted, so step c+h can only be row + m, m <= h."""
        s, H = self.store, self.horizon
        out = np.full((len(row), H), -1, dtype=np.int64)
        end = np.asarray(s.offsets, dtype=np.int64)[inst + 1]                            # [B] exclusive
        for m in range(1, H + 1):
            cand = row + m
            ok = np.flatnonzero(cand < end)
            if not len(ok):
                continue
            t = np.asarray(s.times[cand[ok]], dtype=np.int64)
            pos = np.empty(len(ok), np.int64)
            for g in np.unique(group[ok]):
                sel = group[ok] == g
                pos[sel] = np.searchsorted(self.calendars[g], t[sel])
            step = pos - cal_pos[ok]                                                     # >= m
            hit = step <= H
            out[ok[hit], step[hit] - 1] = cand[ok[hit]]
        return out


class EvalWindowDataset(Dataset):
    """Map-style dataset of decisions; ``__getitems__`` gathers a whole batch at once (see module docstring)."""

    def __init__(self, windows: DecisionWindows, inst: np.ndarray, row: np.ndarray) -> None:
        self.windows, self.inst, self.row = windows, inst, row

    def __len__(self) -> int:
        return len(self.inst)

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = np.asarray(indices, dtype=np.int64)
        return self.windows.gather(self.inst[idx], self.row[idx])


def decision_dataset(store: Any, bounds: Sequence[tuple[int, int]] | tuple[int, int],
                     members_only: bool = True) -> EvalWindowDataset:
    """The decisions of one split of ``store``, in date order.

    Args:
        bounds: the split's inclusive [start, end] ns, one pair per series group (a single pair applies
            to every group).
    """
    windows = DecisionWindows(store)
    if len(bounds) == 2 and np.isscalar(bounds[0]):
        bounds = [tuple(bounds)] * len(windows.spans)
    return EvalWindowDataset(windows, *windows.select(bounds, members_only))
