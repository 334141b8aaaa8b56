"""Windowing core: causal normalisation, shapes, deterministic and distributed sampling, batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from kronos.data.datamodule import KronosDataModule, per_device_batch_size
from kronos.data.features import lookback_stats, normalize
from kronos.data.panel import Panel
from kronos.data.synthetic import SyntheticSource
from kronos.data.window_sampler import EpochWindowSampler, permute
from kronos.data.windows import WindowStore
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

L, H = 20, 5


@pytest.fixture(scope="module")
def panel() -> Panel:
    return SyntheticSource(n_instruments=4, n_steps=120, seed=3).load()


def _perturb_horizon(panel: Panel, inst: int, start: int) -> Panel:
    values = [v.copy() for v in panel.values]
    values[inst][start + L : start + L + H] *= 50.0
    return Panel(panel.instruments, panel.timestamps, values, panel.member, panel.origin)


def test_horizon_cannot_change_normalised_lookback_or_stats(panel: Panel) -> None:
    store = WindowStore(panel, L, H)
    inst, off = np.array([1]), np.array([30])
    a = store.gather(inst, off, with_eval=True)
    b = WindowStore(_perturb_horizon(panel, 1, 30), L, H).gather(inst, off, with_eval=True)
    assert torch.equal(a["x"][:, :L], b["x"][:, :L])
    assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["std"], b["std"])
    assert not torch.equal(a["x"][:, L:], b["x"][:, L:])  # the perturbation did reach the horizon


def test_gather_matches_reference_normalisation(panel: Panel) -> None:
    store = WindowStore(panel, L, H, clip=3.0)
    batch = store.gather(np.array([2, 0]), np.array([7, 50]), with_eval=True)
    raw = panel.values[0][50 : 50 + L + H]
    mean, std = lookback_stats(raw[:L])
    np.testing.assert_array_equal(batch["x"][1].numpy(), normalize(raw, mean, std, 3.0))
    assert batch["x"].shape == (2, L + H, 6) and batch["x"].dtype == torch.float32
    assert batch["stamp"].shape == (2, L + H, 5) and batch["stamp"].dtype == torch.int64
    assert batch["x"].abs().max() <= 3.0
    assert batch["instrument"] == [panel.instruments[2], panel.instruments[0]]
    assert batch["datetime"][1].item() == panel.timestamps[0][50 + L - 1].astype(np.int64)
    np.testing.assert_array_equal(batch["close"][1].numpy(), raw[:, 3])


def test_windows_respect_split_bounds_and_horizon(panel: Panel) -> None:
    store = WindowStore(panel, L, H)
    times = panel.timestamps[0].astype(np.int64)
    start, end = times[40], times[80]
    inst, off = store.windows(start, end)
    decision = store.times[store.offsets[inst] + off + L - 1]
    last = store.times[store.offsets[inst] + off + L + H - 1]
    assert decision.min() == start and (last <= end).all()
    assert len(inst) == 4 * (80 - H - 40 + 1)
    assert (np.diff(decision) >= 0).all()


def test_epoch_sampler_is_deterministic_by_seed_and_epoch() -> None:
    a, b, c = EpochWindowSampler(100, 30, seed=1), EpochWindowSampler(100, 30, seed=1), EpochWindowSampler(100, 30, seed=2)
    assert list(a) == list(b) and list(a) != list(c)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and len(set(first)) == 30 == len(a)


@pytest.mark.parametrize("num_samples", [None, 37])
def test_distributed_ranks_get_disjoint_windows_of_equal_count(num_samples: int | None) -> None:
    n, world = 101, 4
    shards = []
    for rank in range(world):
        sampler = DistributedSamplerWrapper(EpochWindowSampler(n, num_samples, seed=5), num_replicas=world,
                                            rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(2)
        shards.append(list(sampler))
    sizes = {len(s) for s in shards}
    assert len(sizes) == 1
    flat = [i for s in shards for i in s]
    expected = n if num_samples is None else num_samples
    # DistributedSampler pads to a multiple of the world size by repeating the first indices only
    assert len(set(flat)) == expected and len(flat) - expected < world


def test_plain_distributed_sampler_partitions_dataset(panel: Panel) -> None:
    dm = KronosDataModule(SyntheticSource(n_instruments=4, n_steps=120, seed=3), L, H, batch_size=8)
    ds = dm.dataset("train")
    parts = [set(DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    assert not parts[0] & parts[1] and len(parts[0] | parts[1]) == len(ds)


def test_per_device_batch_size() -> None:
    assert per_device_batch_size(64, world_size=4, accumulate_grad_batches=2) == 8
    assert per_device_batch_size(64) == 64
    with pytest.raises(ValueError, match="multiple of world_size"):
        per_device_batch_size(10, world_size=4)


def _brute_force_windows(store: WindowStore, start: int, end: int, members_only: bool) -> set[tuple[int, int]]:
    """Every (series, start) meeting the split rule, checked one window at a time."""
    out = set()
    for i in range(len(store.offsets) - 1):
        base, n = store.offsets[i], store.offsets[i + 1] - store.offsets[i]
        for s in range(n - store.window + 1):
            decision, last = store.times[base + s + L - 1], store.times[base + s + store.window - 1]
            if start <= decision <= end and last <= end and (not members_only or store.member[base + s + L - 1]):
                out.add((i, s))
    return out


@pytest.mark.parametrize("members_only", [False, True])
def test_runs_hold_exactly_the_split_windows(panel: Panel, members_only: bool) -> None:
    member = [np.ones(120, bool) for _ in range(4)]
    member[0][50:70] = False
    member[2][:45] = False
    store = WindowStore(Panel(panel.instruments, panel.timestamps, panel.values, member, panel.origin), L, H)
    times = panel.timestamps[0].astype(np.int64)
    index = store.runs(times[30], times[100], members_only=members_only)
    inst, off = index.materialize()
    assert set(zip(inst.tolist(), off.tolist())) == _brute_force_windows(store, times[30], times[100], members_only)
    assert len(index.series) <= 5  # runs: a few integers per series, not one per window
    idx = np.array([0, len(index) - 1, len(index) // 2])
    np.testing.assert_array_equal(np.stack(index.locate(idx)), np.stack([inst[idx], off[idx]]))


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_permute_is_a_seeded_bijection(n: int) -> None:
    a = permute(np.arange(n), n, (1, 0))
    assert sorted(a.tolist()) == list(range(n))
    np.testing.assert_array_equal(a, permute(np.arange(n), n, (1, 0)))
    if n >= 17:
        assert not np.array_equal(a, np.arange(n)) and not np.array_equal(a, permute(np.arange(n), n, (2, 0)))


def test_permute_shuffles_without_visible_order() -> None:
    n = 20000
    p = permute(np.arange(n), n, (7, 3)).astype(float)
    assert abs(np.corrcoef(np.arange(n), p)[0, 1]) < 0.05
    assert abs(np.corrcoef(p[:-1], p[1:])[0, 1]) < 0.05
    # the first tenth of the draw covers the range evenly (10 equal bins within 25 % of the mean)
    counts = np.bincount((p[: n // 10] * 10 // n).astype(int), minlength=10)
    assert counts.min() > 0.75 * n / 100 and counts.max() < 1.25 * n / 100


def test_epoch_draw_does_not_materialise_all_windows() -> None:
    """A trillion windows: the epoch's 1000 draws are computed without an array of every window."""
    sampler = EpochWindowSampler(10**12, 1000, seed=0)
    draw = list(sampler)
    assert len(draw) == len(set(draw)) == 1000 and 0 <= min(draw) and max(draw) < 10**12


@pytest.mark.parametrize("num_samples", [None, 37, 250])
def test_sampler_shards_the_single_process_draw(num_samples: int | None) -> None:
    n, world = 101, 3
    whole = list(EpochWindowSampler(n, num_samples, seed=4))
    shards = [list(EpochWindowSampler(n, num_samples, seed=4, rank=r, world_size=world)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1
    merged = [s[k] for k in range(len(shards[0])) for s in shards][: len(whole)]
    assert merged == whole  # rank r takes positions r, r + world, ...: disjoint and complete
    if num_samples is None:
        assert sorted(whole) == list(range(n))  # one epoch of all windows: each exactly once
    if num_samples == 250:
        assert all(c in (2, 3) for c in np.bincount(whole, minlength=n))  # repeated passes, each a permutation


def test_dataset_over_runs_or_explicit_windows_gives_the_same_items(panel: Panel) -> None:
    from kronos.data.windows import WindowDataset

    store = WindowStore(panel, L, H)
    times = panel.timestamps[0].astype(np.int64)
    inst, off = store.windows(times[30], times[100])  # date-ordered explicit arrays (evaluation)
    by_runs = WindowDataset(store, store.runs(times[30], times[100]))
    explicit = WindowDataset(store, inst, off, with_eval=True)
    assert len(by_runs) == len(explicit) == len(inst)
    item = explicit[5]
    j = by_runs.windows.locate(np.arange(len(by_runs)))
    k = int(np.flatnonzero((j[0] == inst[5]) & (j[1] == off[5]))[0])
    assert torch.equal(by_runs[k]["x"], item["x"]) and item["instrument"] == panel.instruments[inst[5]]
