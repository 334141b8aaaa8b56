"""Window indexing and batch assembly over contiguous per-instrument arrays.

A ``WindowStore`` concatenates a Panel's instruments into one float32 [N, F] array (plus
int64 calendar stamps computed once); a window is the pair (instrument index, start offset)
held in numpy arrays, and a batch is gathered with one fancy index. Normalisation uses the
lookback rows only, so nothing of the horizon reaches the inputs or their statistics.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES, lookback_stats, normalize, time_features
from kronos.data.panel import Panel


class WindowStore:
    """A Panel flattened into contiguous arrays, and the window geometry (L, H, features, clip).

    Attributes:
        values: float32 [N, F] raw feature rows of all instruments, instrument after instrument.
        stamps: int64 [N, 5] calendar fields (minute, hour, weekday, day, month) of each row.
        times: int64 [N] row timestamps in ns.
        close: float32 [N] raw closes.
        member: bool [N] universe membership (all True when the panel has none).
        offsets: int64 [I + 1] first row of each instrument (and N).
    """

    def __init__(self, panel: Panel, lookback: int, horizon: int,
                 features: Sequence[str] = FEATURES, clip: float = 5.0) -> None:
        if lookback < 1 or horizon < 0:
            raise ValueError(f"lookback must be >= 1 and horizon >= 0, got {lookback}, {horizon}")
        unknown = [f for f in features if f not in panel.features]
        if unknown:
            raise ValueError(f"features {unknown} are not among the panel's {list(panel.features)}")
        if not panel.instruments:
            raise DataValidationError(f"{panel.origin}: the data source returned no instruments.")
        cols = [panel.features.index(f) for f in features]
        self.panel = panel
        self.lookback, self.horizon, self.clip = lookback, horizon, clip
        self.features = tuple(features)
        self.instruments = np.array(panel.instruments, dtype=object)
        lengths = np.array([len(t) for t in panel.timestamps], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.values = np.ascontiguousarray(np.concatenate(panel.values)[:, cols], dtype=np.float32)
        self.close = np.ascontiguousarray(np.concatenate(panel.values)[:, panel.features.index("close")])
        self.times = np.concatenate(panel.timestamps).astype("datetime64[ns]").astype(np.int64)
        self.stamps = np.concatenate([time_features(t) for t in panel.timestamps])
        self.member = (np.concatenate(panel.member).astype(bool) if panel.member is not None
                       else np.ones(len(self.times), bool))

    @property
    def window(self) -> int:
        """Rows per window, L + H."""
        return self.lookback + self.horizon

    def windows(self, start: int, end: int, members_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Windows whose decision time (last lookback row) is in [start, end] ns and whose whole
        horizon exists and ends by ``end`` (so no target reaches into a later split).

        Returns:
            (instrument index int64 [W], start offset within the instrument int64 [W]), sorted by
            decision time, then instrument.
        """
        inst_all, off_all = [], []
        for i in range(len(self.offsets) - 1):
            base, n = self.offsets[i], self.offsets[i + 1] - self.offsets[i]
            n_win = n - self.window + 1
            if n_win <= 0:
                continue
            s = np.arange(n_win, dtype=np.int64)
            decision = self.times[base + s + self.lookback - 1]
            last = self.times[base + s + self.window - 1]
            keep = (decision >= start) & (decision <= end) & (last <= end)
            if members_only:
                keep &= self.member[base + s + self.lookback - 1]
            inst_all.append(np.full(int(keep.sum()), i, dtype=np.int64))
            off_all.append(s[keep])
        inst = np.concatenate(inst_all) if inst_all else np.zeros(0, np.int64)
        off = np.concatenate(off_all) if off_all else np.zeros(0, np.int64)
        order = np.lexsort((inst, self.times[self.offsets[inst] + off + self.lookback - 1]))
        return inst[order], off[order]

    def gather(self, inst: np.ndarray, off: np.ndarray, with_eval: bool = False) -> dict[str, Any]:
        """Assemble a batch of windows.

        Args:
            inst, off: int64 [B] instrument indices and start offsets.
            with_eval: add instrument, datetime, mean, std and close.

        Returns:
            ``x`` float32 [B, L+H, F] normalised with lookback-only stats and clipped,
            ``stamp`` int64 [B, L+H, 5]; with_eval adds ``instrument`` list[str] [B],
            ``datetime`` int64 [B] (decision time, ns), ``mean``/``std`` float32 [B, F] and
            ``close`` float32 [B, L+H] raw closes.
        """
        rows = (self.offsets[inst] + off)[:, None] + np.arange(self.window)
        raw = self.values[rows]
        mean, std = lookback_stats(raw[:, : self.lookback])
        batch: dict[str, Any] = {
            "x": torch.from_numpy(normalize(raw, mean, std, self.clip)),
            "stamp": torch.from_numpy(self.stamps[rows]),
        }
        if with_eval:
            batch["instrument"] = list(self.instruments[inst])
            batch["datetime"] = torch.from_numpy(self.times[rows[:, self.lookback - 1]])
            batch["mean"] = torch.from_numpy(mean)
            batch["std"] = torch.from_numpy(std)
            batch["close"] = torch.from_numpy(self.close[rows])
        return batch


class WindowDataset(Dataset):
    """Map-style dataset over indexed windows; ``__getitems__`` gathers a whole batch at once.

    Items: see ``WindowStore.gather`` (without the batch dimension for ``__getitem__``).
    """

    def __init__(self, store: WindowStore, inst: np.ndarray, off: np.ndarray, with_eval: bool = False) -> None:
        self.store, self.inst, self.off, self.with_eval = store, inst, off, with_eval

    def __len__(self) -> int:
        return len(self.inst)

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        idx = np.asarray(indices, dtype=np.int64)
        return self.store.gather(self.inst[idx], self.off[idx], self.with_eval)


def collate_windows(items: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """Collate for WindowDataset: batches from ``__getitems__`` pass through; lists of items are
    stacked (tensors) or kept as lists (strings)."""
    if isinstance(items, dict):
        return items
    return {k: torch.stack([it[k] for it in items]) if isinstance(items[0][k], torch.Tensor)
            else [it[k] for it in items] for k in items[0]}


class EpochWindowSampler(Sampler[int]):
    """Random windows per epoch, reproducible from (seed, epoch).

    Draws ``num_samples`` distinct window indices (all windows, shuffled, when None; repeated
    shuffles when more are asked than exist). Every rank computes the same draw, so Lightning's
    ``DistributedSamplerWrapper`` (which forwards ``set_epoch``) hands each rank a disjoint
    share of equal size.
    """

    def __init__(self, n_windows: int, num_samples: int | None = None, seed: int = 0) -> None:
        if n_windows <= 0:
            raise ValueError("EpochWindowSampler needs at least one window")
        self.n_windows, self.seed, self.epoch = n_windows, seed, 0
        self.num_samples = n_windows if num_samples is None else int(num_samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw (Lightning calls this at each epoch start)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        reps = -(-self.num_samples // self.n_windows)
        draw = np.concatenate([rng.permutation(self.n_windows) for _ in range(reps)])[: self.num_samples]
        return iter(draw.tolist())
