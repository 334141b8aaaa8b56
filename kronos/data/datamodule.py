"""``KronosDataModule``: any source's Panel -> time-split windows -> train / eval batches."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Sampler

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES
from kronos.data.panel import Panel
from kronos.data.source import Source, check_source, is_mixture
from kronos.data.splits import resolve_splits
from kronos.data.transforms import LEVEL, check_normalization
from kronos.data.window_sampler import EpochWindowSampler, ShardSampler
from kronos.data.windows import WindowDataset, WindowIndex, WindowStore, collate_windows


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


def store_settings(store: Mapping[str, Any] | str | bool | None) -> tuple[bool, str | None]:
    """``data.store`` as (memory-mapped?, directory): a mapping ``{enabled, dir}``, or the shorthands
    ``"mmap"``/``True`` and ``"ram"``/``False``/None."""
    if store is None or isinstance(store, bool):
        return bool(store), None
    if isinstance(store, str):
        if store not in ("mmap", "ram"):
            raise ValueError(f"data.store={store!r}: use 'mmap', 'ram' or {{enabled: <bool>, dir: <path>}}")
        return store == "mmap", None
    directory = store.get("dir")
    return bool(store.get("enabled", False)), str(directory) if directory else None


class KronosDataModule(LightningDataModule):
    """Windows of L lookback + H horizon rows from a source, split by time.

    Args:
        source: a :class:`kronos.data.source.Source` (every ability declared there; subclass
            ``SourceBase`` for the defaults); a ``MixtureSource`` makes each group of its series a
            component drawn by weight.
        lookback: L, history rows per window.
        horizon: H, forecast rows per window.
        features: feature columns, a subset of FEATURES in any order.
        clip: normalised values are clipped to [-clip, clip].
        splits: ratios ``{train: 0.7, val: 0.15, test: 0.15}`` or date pairs ``{train: [start, end], ...}``;
            a window belongs to the split holding its decision time (last lookback row) and its
            horizon must end within that split. Resolved on each mixture component's own calendar.
        batch_size: GLOBAL batch; each device gets batch_size // (world_size * accumulate_grad_batches).
        num_workers: DataLoader workers.
        seed: seed of the per-epoch random draw of training windows.
        benchmark: benchmark instrument for the backtest (carried, unused here).
        samples_per_epoch: training windows drawn per epoch (None: all of them).
        store: ``{enabled: bool, dir: path}`` (or "mmap"/"ram"): enabled streams the source once into a
            memory-mapped store under ``dir`` (``kronos.data.store``), shared by all processes of a
            node, instead of holding the rows in RAM. Batches are identical either way.
        train_members_only: training and validation windows only where the instrument is a member of
            the universe at the decision row, when the data has membership (evaluation windows always are).
        normalization: ``level`` (price levels over the lookback's mean/std, the published checkpoints'
            inputs) or ``returns`` (scale-free gaps, wicks, log returns and log volumes; see
            :mod:`kronos.data.transforms`), for training and decision windows alike.
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
        store: Mapping[str, Any] | str | bool | None = None,
        train_members_only: bool = True,
        normalization: str = LEVEL,
    ) -> None:
        super().__init__()
        self.source = check_source(source)
        self.lookback, self.horizon = int(lookback), int(horizon)
        self.features = tuple(features)
        self.clip = float(clip)
        self.normalization = check_normalization(normalization, self.features)
        self.splits = dict(splits) if splits is not None else None
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.benchmark = benchmark
        self.samples_per_epoch = samples_per_epoch
        self.mmap, self.store_dir = store_settings(store)
        if self.mmap and not self.store_dir:
            raise ValueError("data.store is enabled but data.store.dir is not set: give the store's cache directory.")
        self.train_members_only = bool(train_members_only)
        self._panel: Panel | None = None
        self._store: WindowStore | None = None
        self._group_bounds: list[dict[str, tuple[np.int64, np.int64]]] = []
        self._windows: dict[str, WindowIndex] = {}
        self._group_windows: dict[str, list[int]] = {}
        self._eval_windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def panel(self) -> Panel:
        """The raw data (raw prices per instrument and date for the backtest): views of the store's
        arrays, so asking for it copies nothing (memory-mapped stays mapped)."""
        if self._panel is None:
            self._panel = self.store.as_panel()
        return self._panel

    @property
    def store(self) -> WindowStore:
        """The contiguous (or memory-mapped) arrays behind every batch."""
        self.setup()
        assert self._store is not None
        return self._store

    def _open_store(self) -> WindowStore:
        """The source's rows: streamed once into the memory-mapped store, or loaded into RAM."""
        if self.mmap:
            from kronos.data.store import ensure_store, open_store  # only for memory-mapped data

            path = ensure_store(self.source, self.store_dir)
            weights = [w for _, _, w in self.source.parts()]  # today's weights, not the build's
            return open_store(path, self.lookback, self.horizon, self.features, self.clip, weights,
                              normalization=self.normalization)
        parts = self.source.load_parts()
        if not parts:
            raise DataValidationError(f"{self.source.origin}: the data source returned no series (no group of "
                                      "series to split). Check the source's path, market or date range.")
        return WindowStore.from_panels(parts, self.lookback, self.horizon, self.features, self.clip,
                                       normalization=self.normalization)

    def setup(self, stage: str | None = None) -> None:
        """Open (or build) the store, resolve the splits and index every split's windows (once).

        Splits are resolved on each group's calendar (one group unless the source is a mixture);
        a split's windows are runs over the groups in order (a few integers per series).
        """
        if self._store is not None:
            return
        store = self._open_store()
        members = self.train_members_only
        self._group_bounds = [resolve_splits(self.splits, g.calendar) for g in store.groups]
        for name in self._group_bounds[0]:
            parts = [store.runs(*bounds[name], members_only=members, group=g)
                     for g, bounds in zip(store.groups, self._group_bounds)]
            self._windows[name] = WindowIndex.concat(parts)
            self._group_windows[name] = [len(p) for p in parts]
            if len(self._windows[name]) == 0:
                start, end = self._split_span(name)
                longest = int(np.diff(store.offsets).max(initial=0))
                raise DataValidationError(
                    f"{store.origin}: split '{name}' ({_iso(start)} .. {_iso(end)}) has no window of "
                    f"lookback {self.lookback} + horizon {self.horizon} = {store.window} rows (longest series: "
                    f"{longest} rows). Use more data, a shorter lookback/horizon or wider splits."
                )
        if "train" in self._group_windows:
            empty = [g.name for g, n in zip(store.groups, self._group_windows["train"]) if n == 0 and g.weight > 0]
            if empty:
                raise DataValidationError(
                    f"{store.origin}: mixture component(s) {empty} have a positive weight but no training window of "
                    f"{store.window} rows. Give them more data, weight 0, or a shorter lookback/horizon."
                )
        self._store = store

    def _split_span(self, name: str) -> tuple[int, int]:
        """(earliest start, latest end) of split ``name`` over the groups, ns."""
        return (int(min(b[name][0] for b in self._group_bounds)), int(max(b[name][1] for b in self._group_bounds)))

    def _device_batch(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return per_device_batch_size(self.batch_size)
        return per_device_batch_size(self.batch_size, trainer.world_size, trainer.accumulate_grad_batches)

    def _rank_world(self) -> tuple[int, int]:
        """(global rank, world size) of the attached trainer ((0, 1) without one)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(getattr(trainer, "global_rank", 0)), int(getattr(trainer, "world_size", 1))

    def _loader(self, dataset: WindowDataset, batch_size: int, sampler: Sampler[int] | None = None) -> DataLoader:
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

    def _eval_index(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Members-only windows of ``split`` as explicit date-ordered arrays (built on first use only:
        one integer pair per window, so never for the training split unless asked)."""
        if split not in self._eval_windows:
            store = self.store
            parts = [store.windows(*bounds[split], members_only=True, group=g)
                     for g, bounds in zip(store.groups, self._group_bounds)]
            inst = np.concatenate([p[0] for p in parts])
            off = np.concatenate([p[1] for p in parts])
            order = np.lexsort((inst, store.times[store.offsets[inst] + off + self.lookback - 1]))
            self._eval_windows[split] = (inst[order], off[order])
        return self._eval_windows[split]

    def dataset(self, split: str, with_eval: bool = False) -> WindowDataset:
        """The windows of one split (eval: members only, date-ordered, with instrument/datetime/mean/std/close)."""
        self.setup()
        if split not in self._windows:
            raise KeyError(f"unknown split '{split}'; configured: {list(self._windows)}")
        windows = self._eval_index(split) if with_eval else self._windows[split]
        return WindowDataset(self.store, windows, with_eval=with_eval)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        rank, world = self._rank_world()
        groups = self.store.groups
        sampler = EpochWindowSampler(
            len(ds), self.samples_per_epoch, self.seed,
            group_sizes=self._group_windows["train"] if len(groups) > 1 else None,
            weights=[g.weight for g in groups] if len(groups) > 1 else None,
            rank=rank, world_size=world,
        )
        return self._loader(ds, self._device_batch(), sampler)

    def val_dataloader(self) -> DataLoader:
        ds = self.dataset("val")
        return self._loader(ds, self._device_batch(), ShardSampler(len(ds), *self._rank_world()))

    def test_dataloader(self) -> DataLoader:
        ds = self.dataset("test")
        return self._loader(ds, self._device_batch(), ShardSampler(len(ds), *self._rank_world()))

    def eval_dataloader(self, split: str = "test", batch_size: int | None = None, start: Any = None,
                        end: Any = None) -> DataLoader:
        """Every (decision date, instrument) of ``split`` where the instrument is a member, in date
        order, built from the lookback alone (see kronos.data.eval_windows for the batch keys: ``x``
        [B,L,F], ``stamp`` [B,L+H,5], ``y_stamp`` [B,H,5], ``close`` [B,L+H] NaN where the future is missing).
        ``start``/``end`` (anything ``pd.Timestamp`` reads; None: open) keep only the decisions in
        [start, end] of the split, so the loader's length is what will be forecast."""
        from kronos.data.eval_windows import decision_dataset

        self.setup()
        # One {split: (start, end)} per series group (a mixture's components), or one for the whole store.
        per_group = self._group_bounds
        if split not in per_group[0]:
            raise KeyError(f"unknown split '{split}'; configured: {list(per_group[0])}")
        lo = pd.Timestamp(start).value if start is not None else None
        hi = pd.Timestamp(end).value if end is not None else None
        bounds = [(b[split][0] if lo is None else max(int(b[split][0]), lo),
                   b[split][1] if hi is None else min(int(b[split][1]), hi)) for b in per_group]
        return self._loader(decision_dataset(self.store, bounds), batch_size or self._device_batch())

    def window_settings(self) -> dict[str, Any]:
        """What a trained model depends on: lookback, horizon, features, clip, normalization (recorded in
        checkpoints)."""
        return {"lookback": self.lookback, "horizon": self.horizon, "features": list(self.features), "clip": self.clip,
                "normalization": self.normalization}

    def state_dict(self) -> dict[str, Any]:
        """Saved by Lightning in every checkpoint, so a resume can compare (``kronos.stages.resume``)."""
        return {"window_settings": self.window_settings()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the settings are checked before fitting, not taken from the checkpoint."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able data summary (for training_info.json); reads no rows of a memory-mapped store."""
        self.setup()
        store = self.store
        first = min(int(g.calendar[0]) for g in store.groups if len(g.calendar))
        last = max(int(g.calendar[-1]) for g in store.groups if len(g.calendar))

        def eval_count(name: str, groups: Sequence[int]) -> int:
            return sum(len(store.runs(*self._group_bounds[k][name], members_only=True, group=store.groups[k]))
                       for k in groups)

        all_groups = range(len(store.groups))
        info: dict[str, Any] = {
            "source": store.origin,
            "instruments": len(store.instruments),
            "rows": store.n_rows,
            "features": list(self.features),
            "lookback": self.lookback,
            "horizon": self.horizon,
            "clip": self.clip,
            "batch_size": self.batch_size,
            "benchmark": self.benchmark,
            "date_range": [_iso(first), _iso(last)],
            "splits": {
                name: {
                    "start": _iso(self._split_span(name)[0]),
                    "end": _iso(self._split_span(name)[1]),
                    "windows": len(self._windows[name]),
                    "eval_windows": eval_count(name, all_groups),
                }
                for name in self._windows
            },
            "samples_per_epoch": self.samples_per_epoch,
            # Without membership the universe is whoever has data: backtests then carry survivorship bias.
            "membership": store.member is not None,
            "train_members_only": self.train_members_only,
            "store": {"kind": "mmap" if store.location else "ram", "path": store.location},
        }
        if len(store.groups) > 1 or is_mixture(self.source):
            total = sum(g.weight for g in store.groups)
            info["mixture"] = [
                {
                    "name": g.name,
                    "weight": g.weight,
                    "share": g.weight / total,
                    "instruments": g.stop - g.start,
                    "rows": int(store.offsets[g.stop] - store.offsets[g.start]),
                    "splits": {
                        name: {
                            "start": _iso(self._group_bounds[k][name][0]),
                            "end": _iso(self._group_bounds[k][name][1]),
                            "windows": self._group_windows[name][k],
                        }
                        for name in self._windows
                    },
                }
                for k, g in enumerate(store.groups)
            ]
        return info
