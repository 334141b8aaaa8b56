"""``KronosDataModule``: any source's Panel -> time-split windows -> train / eval batches."""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES
from kronos.data.panel import Panel
from kronos.data.splits import resolve_splits
from kronos.data.windows import EpochWindowSampler, WindowDataset, WindowStore, collate_windows


class Source(Protocol):
    """Anything with ``load() -> Panel`` (SyntheticSource, CSVSource, QlibSource)."""

    def load(self) -> Panel: ...


def per_device_batch_size(batch_size: int, world_size: int = 1, accumulate_grad_batches: int = 1) -> int:
    """The per-device batch that makes ``batch_size`` the global (effective) batch.

    Raises:
        ValueError: when batch_size is not a positive multiple of world_size * accumulate_grad_batches.
    """
    denom = world_size * accumulate_grad_batches
    if batch_size < denom or batch_size % denom:
        raise ValueError(
            f"data.batch_size={batch_size} (global) must be a positive multiple of world_size ({world_size}) x "
            f"accumulate_grad_batches ({accumulate_grad_batches}) = {denom}; choose e.g. {max(denom, batch_size // denom * denom)}."
        )
    return batch_size // denom


def _iso(ns: int) -> str:
    return str(pd.Timestamp(int(ns)))


class KronosDataModule(LightningDataModule):
    """Windows of L lookback + H horizon rows from a source, split by time.

    Args:
        source: object with ``load() -> Panel``.
        lookback: L, history rows per window.
        horizon: H, forecast rows per window.
        features: feature columns, a subset of FEATURES in any order.
        clip: normalised values are clipped to [-clip, clip].
        splits: ratios ``{train: 0.7, val: 0.15, test: 0.15}`` or date pairs ``{train: [start, end], ...}``;
            a window belongs to the split holding its decision time (last lookback row) and its
            horizon must end within that split.
        batch_size: GLOBAL batch; each device gets batch_size // (world_size * accumulate_grad_batches).
        num_workers: DataLoader workers.
        seed: seed of the per-epoch random draw of training windows.
        benchmark: benchmark instrument for the backtest (carried, unused here).
        samples_per_epoch: training windows drawn per epoch (None: all of them).
    """

    def __init__(
        self,
        source: Source,
        lookback: int,
        horizon: int,
        features: Sequence[str] = FEATURES,
        clip: float = 5.0,
        splits: Mapping[str, Any] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        benchmark: str | None = None,
        samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.lookback, self.horizon = int(lookback), int(horizon)
        self.features = tuple(features)
        self.clip = float(clip)
        self.splits = dict(splits) if splits is not None else None
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.benchmark = benchmark
        self.samples_per_epoch = samples_per_epoch
        self._panel: Panel | None = None
        self._store: WindowStore | None = None
        self._bounds: dict[str, tuple[np.int64, np.int64]] = {}
        self._windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._eval_windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def panel(self) -> Panel:
        """The source's raw data (loaded once): raw prices per instrument and date for the backtest."""
        if self._panel is None:
            self._panel = self.source.load()
        return self._panel

    @property
    def store(self) -> WindowStore:
        """The contiguous arrays behind every batch."""
        self.setup()
        assert self._store is not None
        return self._store

    def setup(self, stage: str | None = None) -> None:
        """Load the panel, resolve the splits and index every split's windows (once)."""
        if self._store is not None:
            return
        store = WindowStore(self.panel, self.lookback, self.horizon, self.features, self.clip)
        self._bounds = resolve_splits(self.splits, self.panel.calendar)
        for name, (start, end) in self._bounds.items():
            self._windows[name] = store.windows(start, end)
            self._eval_windows[name] = store.windows(start, end, members_only=True)
            if len(self._windows[name][0]) == 0:
                longest = int(np.diff(store.offsets).max(initial=0))
                raise DataValidationError(
                    f"{self.panel.origin}: split '{name}' ({_iso(start)} .. {_iso(end)}) has no window of "
                    f"lookback {self.lookback} + horizon {self.horizon} = {store.window} rows (longest series: "
                    f"{longest} rows). Use more data, a shorter lookback/horizon or wider splits."
                )
        self._store = store

    def _device_batch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return per_device_batch_size(self.batch_size)
        return per_device_batch_size(self.batch_size, trainer.world_size, trainer.accumulate_grad_batches)

    def _loader(self, dataset: WindowDataset, batch_size: int, sampler: EpochWindowSampler | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate_windows,
        )

    def dataset(self, split: str, with_eval: bool = False) -> WindowDataset:
        """The windows of one split (eval: members only, with instrument/datetime/mean/std/close)."""
        self.setup()
        table = self._eval_windows if with_eval else self._windows
        if split not in table:
            raise KeyError(f"unknown split '{split}'; configured: {list(table)}")
        return WindowDataset(self.store, *table[split], with_eval=with_eval)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        sampler = EpochWindowSampler(len(ds), self.samples_per_epoch, self.seed)
        return self._loader(ds, self._device_batch(), sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), self._device_batch())

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), self._device_batch())

    def eval_dataloader(self, split: str = "test", batch_size: int | None = None) -> DataLoader:
        """Every (decision date, instrument) of ``split`` where the instrument is a member, in date
        order, built from the lookback alone (see kronos.data.eval_windows for the batch keys: ``x``
        [B,L,F], ``stamp`` [B,L+H,5], ``y_stamp`` [B,H,5], ``close`` [B,L+H] NaN where the future is missing)."""
        from kronos.data.eval_windows import decision_dataset

        self.setup()
        # One {split: (start, end)} per series group (a mixture's components), or one for the whole store.
        per_group = getattr(self, "_group_bounds", None) or [self._bounds]
        if split not in per_group[0]:
            raise KeyError(f"unknown split '{split}'; configured: {list(per_group[0])}")
        bounds = [b[split] for b in per_group]
        return self._loader(decision_dataset(self.store, bounds), batch_size or self._device_batch())

    def describe(self) -> dict[str, Any]:
        """A JSON-able data summary (for training_info.json)."""
        self.setup()
        cal = self.panel.calendar
        return {
            "source": self.panel.origin,
            "instruments": len(self.panel.instruments),
            "rows": self.panel.n_rows,
            "features": list(self.features),
            "lookback": self.lookback,
            "horizon": self.horizon,
            "clip": self.clip,
            "batch_size": self.batch_size,
            "benchmark": self.benchmark,
            "date_range": [_iso(cal[0]), _iso(cal[-1])],
            "splits": {
                name: {
                    "start": _iso(start),
                    "end": _iso(end),
                    "windows": int(len(self._windows[name][0])),
                    "eval_windows": int(len(self._eval_windows[name][0])),
                }
                for name, (start, end) in self._bounds.items()
            },
        }
