"""Window stores, run-length window indices and batch assembly.

A ``WindowStore`` holds a set of series as contiguous row arrays: raw values float32 [N, 6],
timestamps int64 [N], calendar stamps uint8 [N, 5] and optional membership bool [N], with the
first row of each series in ``offsets`` [I + 1]. The arrays are either in RAM (``from_panels``)
or memory-mapped files (``kronos.data.store``); everything below treats both alike, so the two
give identical batches.

A window is (series, start row within the series). Within one series and one split the valid
starts are contiguous (timestamps are sorted), or a few spells of contiguous starts when only
universe members count, so a split's windows are held as *runs* (series, first start, count):
a few integers per series, never one integer per window. The samplers of
``kronos.data.window_sampler`` draw flat window numbers and ``WindowIndex.locate`` maps them to
(series, start) with ``searchsorted`` over the runs' cumulative counts.

Normalisation uses the lookback rows only, so nothing of the horizon reaches the inputs or
their statistics.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES, time_features
from kronos.data.transforms import LEVEL, check_normalization, encode
from kronos.data.panel import Panel


@dataclass(frozen=True)
class SeriesGroup:
    """A block of consecutive series that share a calendar: the whole store, or one mixture component.

    Attributes:
        name: the source's origin (or the mixture component's name).
        start, stop: the group's series are ``start .. stop - 1``.
        calendar: int64 ns [D], sorted union of the group's timestamps (splits are resolved on it).
        weight: the component's mixture weight (1.0 outside mixtures).
    """

    name: str
    start: int
    stop: int
    calendar: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class WindowIndex:
    """A split's windows as runs: run r covers starts ``first[r] .. first[r] + count[r] - 1`` of
    series ``series[r]``. Window numbers run over the runs in order (series-major).

    Attributes:
        series, first, count: int64 [R].
        ends: int64 [R], cumulative counts (window number one past each run's last window).
    """

    series: np.ndarray
    first: np.ndarray
    count: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "ends", np.cumsum(self.count))

    @classmethod
    def from_runs(cls, series: Sequence[int], first: Sequence[int], count: Sequence[int]) -> "WindowIndex":
        """Build from run lists, dropping empty runs."""
        s, f, c = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (series, first, count))
        keep = c > 0
        return cls(s[keep], f[keep], c[keep])

    @classmethod
    def concat(cls, parts: Sequence["WindowIndex"]) -> "WindowIndex":
        """The windows of ``parts`` one after the other (numbers of later parts shifted)."""
        if not parts:
            return cls.from_runs([], [], [])
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("series", "first", "count")))

    def __len__(self) -> int:
        return int(self.count.sum())

    def locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window numbers int64 [B] -> (series int64 [B], start offset within the series int64 [B])."""
        idx = np.asarray(idx, dtype=np.int64)
        ends = self.ends
        if len(idx) and (idx.min() < 0 or idx.max() >= (ends[-1] if len(ends) else 0)):
            raise IndexError(f"window number out of range [0, {len(self)})")
        run = np.searchsorted(ends, idx, side="right")
        return self.series[run], self.first[run] + idx - (ends[run] - self.count[run])

    def materialize(self) -> tuple[np.ndarray, np.ndarray]:
        """Every window as explicit arrays (series int64 [W], start int64 [W]); W integers each, so
        only for splits that are small enough (evaluation)."""
        n = len(self)
        return self.locate(np.arange(n, dtype=np.int64)) if n else (np.zeros(0, np.int64), np.zeros(0, np.int64))


def _read_rows(array: np.ndarray, a: int, b: int) -> np.ndarray:
    """Rows a..b-1 of a 1-d array. From a memory-mapped file they are read with one positioned read
    into a temporary array instead: scanning every series through the mapping would leave all of
    the file's pages mapped into this process (counted in its RSS) long after the scan."""
    whole_file = isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap)  # not a slice of one
    if whole_file and array.filename is not None and array.ndim == 1:
        count = max(0, min(b, len(array)) - a)
        return np.fromfile(array.filename, dtype=array.dtype, count=count, offset=array.offset + a * array.itemsize)
    return np.asarray(array[a:b])


def _panel_arrays(parts: Sequence[tuple[Panel, float]]) -> dict[str, Any]:
    """The store arrays (see ``WindowStore``) of panels concatenated in order, one group per panel."""
    panels = [p for p, _ in parts]
    feats = panels[0].features
    if any(p.features != feats for p in panels):
        raise ValueError("all panels of a store must have the same feature columns")
    instruments = [name for p in panels for name in p.instruments]
    stamps = [t for p in panels for t in p.timestamps]
    if not instruments:
        raise DataValidationError(f"{panels[0].origin}: the data source returned no instruments.")
    lengths = np.array([len(t) for t in stamps], dtype=np.int64)
    member = None
    if any(p.member is not None for p in panels):
        member = np.concatenate([
            m.astype(bool) for p in panels
            for m in (p.member if p.member is not None else [np.ones(len(t), bool) for t in p.timestamps])
        ])
    groups, start = [], 0
    for p, weight in parts:
        cal = p.calendar.astype("datetime64[ns]").astype(np.int64)
        groups.append(SeriesGroup(p.origin, start, start + len(p.instruments), cal, float(weight)))
        start += len(p.instruments)
    return {
        "values": np.ascontiguousarray(np.concatenate([v for p in panels for v in p.values]), dtype=np.float32),
        "times": np.concatenate(stamps).astype("datetime64[ns]").astype(np.int64),
        "stamps": np.concatenate([time_features(t) for t in stamps]).astype(np.uint8),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "instruments": instruments,
        "member": member,
        "groups": groups,
        "origin": panels[0].origin if len(panels) == 1 else "mixture(" + ", ".join(p.origin for p in panels) + ")",
        "source_features": feats,
    }


class WindowStore:
    """Series as contiguous row arrays (in RAM or memory-mapped) and the window geometry.

    ``WindowStore(panel, lookback, horizon, features, clip)`` holds one Panel in RAM;
    ``from_panels`` several (a mixture's components); ``from_arrays`` wraps given arrays (the
    memory-mapped store of ``kronos.data.store``).

    Attributes:
        values: float32 [N, F_src] raw rows, series after series, columns ``source_features``.
        times: int64 [N] row timestamps in ns, strictly increasing within each series.
        stamps: uint8 [N, 5] calendar fields (minute, hour, weekday, day, month) of each row.
        offsets: int64 [I + 1] first row of each series (and N).
        instruments: object [I] series names.
        member: bool [N] universe membership, or None when the data has no membership.
        groups: the series blocks (one per mixture component; one for a plain source).
        lookback, horizon, features, clip: the window geometry (a window holds L + H rows of ``features``).
        normalization: ``level`` or ``returns`` (:mod:`kronos.data.transforms`): how windows are normalised.
        origin: where the rows came from (for messages and ``describe``).
        source_features: the columns of ``values`` (FEATURES).
        location: the store directory of a memory-mapped store, None in RAM.
    """

    def __init__(self, panel: Panel, lookback: int, horizon: int,
                 features: Sequence[str] = FEATURES, clip: float = 5.0, normalization: str = LEVEL) -> None:
        self._assign(**_panel_arrays([(panel, 1.0)]), lookback=lookback, horizon=horizon, features=features, clip=clip,
                     normalization=normalization)

    @classmethod
    def from_panels(
        cls,
        parts: Sequence[tuple[Panel, float]],
        lookback: int,
        horizon: int,
        features: Sequence[str] = FEATURES,
        clip: float = 5.0,
        normalization: str = LEVEL,
    ) -> "WindowStore":
        """An in-RAM store of one or more panels (a mixture's components), each a group.

        Args:
            parts: (panel, weight) per group; panels must share their feature columns.
        """
        store = cls.__new__(cls)
        store._assign(**_panel_arrays(parts), lookback=lookback, horizon=horizon, features=features, clip=clip,
                      normalization=normalization)
        return store

    @classmethod
    def from_arrays(cls, **arrays: Any) -> "WindowStore":
        """A store over given arrays: keyword arguments as the attributes listed in the class docstring."""
        store = cls.__new__(cls)
        store._assign(**arrays)
        return store

    def _assign(
        self,
        values: np.ndarray,
        times: np.ndarray,
        stamps: np.ndarray,
        offsets: np.ndarray,
        instruments: Sequence[str],
        member: np.ndarray | None,
        groups: Sequence[SeriesGroup],
        lookback: int,
        horizon: int,
        features: Sequence[str] = FEATURES,
        clip: float = 5.0,
        origin: str = "<store>",
        source_features: Sequence[str] = FEATURES,
        location: str | None = None,
        normalization: str = LEVEL,
    ) -> None:
        if lookback < 1 or horizon < 0:
            raise ValueError(f"lookback must be >= 1 and horizon >= 0, got {lookback}, {horizon}")
        unknown = [f for f in features if f not in source_features]
        if unknown:
            raise ValueError(f"features {unknown} are not among the data's {list(source_features)}")
        if len(instruments) == 0:
            raise DataValidationError(f"{origin}: the data source returned no instruments.")
        self.values, self.times, self.stamps, self.member = values, times, stamps, member
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.instruments = np.array(list(instruments), dtype=object)
        self.groups = list(groups)
        self.lookback, self.horizon, self.clip = int(lookback), int(horizon), float(clip)
        self.features = tuple(features)
        self.source_features = tuple(source_features)
        self.origin, self.location = origin, location
        self.normalization = check_normalization(normalization, self.features)
        self._cols = [self.source_features.index(f) for f in self.features]
        self._all_cols = self._cols == list(range(len(self.source_features)))

    @property
    def window(self) -> int:
        """Rows per window, L + H."""
        return self.lookback + self.horizon

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def close(self) -> np.ndarray:
        """float32 [N] raw closes (a view of ``values``, no copy)."""
        return self.values[:, self.source_features.index("close")]

    def as_panel(self) -> Panel:
        """The rows as a Panel whose arrays are views of the store (no copy, memory-mapped stays mapped)."""
        sl = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        return Panel(
            [str(n) for n in self.instruments],
            [self.times[s].view("datetime64[ns]") for s in sl],
            [self.values[s] for s in sl],
            [self.member[s] for s in sl] if self.member is not None else None,
            self.origin,
            self.source_features,
        )

    def runs(self, start: int, end: int, members_only: bool = False,
             group: SeriesGroup | None = None) -> WindowIndex:
        """Windows whose decision time (last lookback row) is in [start, end] ns and whose whole
        horizon exists and ends by ``end`` (so no target reaches into a later split), as runs.

        Args:
            start, end: inclusive bounds in ns.
            members_only: keep only windows whose instrument is a universe member at the decision
                row (no effect when the store has no membership).
            group: only this group's series (default: all).

        Each series' timestamps (and, with ``members_only``, the membership of its candidate
        decision rows) are read once, into a temporary array.
        """
        lo_series, hi_series = (group.start, group.stop) if group is not None else (0, len(self.instruments))
        L, W = self.lookback, self.window
        series, first, count = [], [], []
        for i in range(lo_series, hi_series):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            n_win = b - a - W + 1
            if n_win <= 0:
                continue
            times = _read_rows(self.times, a, b)
            decision = times[L - 1 : L - 1 + n_win]  # sorted: the runs are contiguous
            last = times[W - 1 :]
            s_lo = int(np.searchsorted(decision, start, side="left"))
            s_hi = int(min(np.searchsorted(decision, end, side="right"), np.searchsorted(last, end, side="right")))
            if s_hi <= s_lo:
                continue
            if members_only and self.member is not None:
                m = _read_rows(self.member, a + L - 1 + s_lo, a + L - 1 + s_hi).astype(np.int8)
                edges = np.flatnonzero(np.diff(np.concatenate([[0], m, [0]])))
                spell_start, spell_stop = edges[0::2], edges[1::2]
                series.extend([i] * len(spell_start))
                first.extend((s_lo + spell_start).tolist())
                count.extend((spell_stop - spell_start).tolist())
            else:
                series.append(i)
                first.append(s_lo)
                count.append(s_hi - s_lo)
        return WindowIndex.from_runs(series, first, count)

    def windows(self, start: int, end: int, members_only: bool = False,
                group: SeriesGroup | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The windows of :meth:`runs` as explicit arrays, sorted by decision time, then instrument
        (for evaluation, which walks dates in order).

        Returns:
            (instrument index int64 [W], start offset within the instrument int64 [W]).
        """
        inst, off = self.runs(start, end, members_only, group).materialize()
        order = np.lexsort((inst, self.times[self.offsets[inst] + off + self.lookback - 1]))
        return inst[order], off[order]

    def gather(self, inst: np.ndarray, off: np.ndarray, with_eval: bool = False) -> dict[str, Any]:
        """Assemble a batch of windows.

        Args:
            inst, off: int64 [B] instrument indices and start offsets.
            with_eval: add instrument, datetime, mean, std and close.

        Returns:
            ``x`` float32 [B, L+H, F] normalised (``self.normalization``) with lookback-only stats and clipped,
            ``stamp`` int64 [B, L+H, 5]; with_eval adds ``instrument`` list[str] [B],
            ``datetime`` int64 [B] (decision time, ns), ``mean``/``std`` float32 [B, F] and
            ``close`` float32 [B, L+H] raw closes.
        """
        rows = (self.offsets[inst] + off)[:, None] + np.arange(self.window)
        raw_all = np.asarray(self.values[rows], dtype=np.float32)
        raw = raw_all if self._all_cols else raw_all[..., self._cols]
        enc = encode(raw, self.lookback, self.normalization, self.clip)
        mean, std = enc.mean, enc.std
        batch: dict[str, Any] = {
            "x": torch.from_numpy(enc.x),
            "stamp": torch.from_numpy(np.asarray(self.stamps[rows], dtype=np.int64)),
        }
        if with_eval:
            batch["instrument"] = list(self.instruments[inst])
            batch["datetime"] = torch.from_numpy(np.asarray(self.times[rows[:, self.lookback - 1]]))
            batch["mean"] = torch.from_numpy(mean)
            batch["std"] = torch.from_numpy(std)
            batch["close"] = torch.from_numpy(np.ascontiguousarray(raw_all[..., self.source_features.index("close")]))
        return batch


class WindowDataset(Dataset):
    """Map-style dataset over windows; ``__getitems__`` gathers a whole batch at once.

    ``windows`` is a :class:`WindowIndex` (runs; training and validation) or explicit
    (instrument int64 [W], start int64 [W]) arrays (evaluation, date-ordered). Items: see
    ``WindowStore.gather`` (without the batch dimension for ``__getitem__``).
    """

    def __init__(self, store: WindowStore, windows: WindowIndex | tuple[np.ndarray, np.ndarray] | np.ndarray,
                 off: np.ndarray | None = None, with_eval: bool = False) -> None:
        # WindowDataset(store, inst, off, with_eval) (explicit arrays as two arguments) is accepted too
        self.store, self.with_eval = store, with_eval
        self.windows = (np.asarray(windows), np.asarray(off)) if off is not None else windows

    def __len__(self) -> int:
        return len(self.windows) if isinstance(self.windows, WindowIndex) else len(self.windows[0])

    def locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window numbers int64 [B] -> (instrument int64 [B], start int64 [B])."""
        if isinstance(self.windows, WindowIndex):
            return self.windows.locate(idx)
        return self.windows[0][idx], self.windows[1][idx]

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.store.gather(*self.locate(np.asarray(indices, dtype=np.int64)), self.with_eval)


def collate_windows(items: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """Collate for WindowDataset: batches from ``__getitems__`` pass through; lists of items are
    stacked (tensors) or kept as lists (strings)."""
    if isinstance(items, dict):
        return items
    return {k: torch.stack([it[k] for it in items]) if isinstance(items[0][k], torch.Tensor)
            else [it[k] for it in items] for k in items[0]}
