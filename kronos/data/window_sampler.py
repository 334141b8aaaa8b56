"""Per-epoch window samplers that never materialise the window list.

Window numbers index a split's windows (``WindowIndex``). An epoch's draw is a pseudo-random
permutation evaluated position by position (:func:`permute`, a Feistel network), so drawing k
windows out of billions takes O(k) time and a constant amount of memory, and every rank of a
distributed run computes the same draw and keeps its own positions.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import DistributedSampler

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic): a well-mixed hash."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def permute(idx: np.ndarray, n: int, key: Sequence[int]) -> np.ndarray:
    """A pseudo-random permutation of ``range(n)`` evaluated at ``idx`` without materialising it.

    A balanced Feistel network over the smallest even number of bits covering n, with
    cycle-walking back into [0, n): a bijection of [0, n) for every key, so drawing positions
    0..k-1 gives k distinct windows in random order with O(k) memory however large n is.

    Args:
        idx: int64 [K] positions in [0, n).
        n: domain size (>= 1).
        key: integers seeding the round keys (e.g. seed, epoch, repeat).
    """
    idx = np.asarray(idx, dtype=np.int64)
    if n <= 1:
        return np.zeros_like(idx)
    bits = max(2, math.ceil(math.log2(n)))
    bits += bits % 2
    half = np.uint64(bits // 2)
    mask = np.uint64((1 << (bits // 2)) - 1)
    rounds = np.random.default_rng([int(k) & 0xFFFFFFFF for k in key]).integers(
        0, np.iinfo(np.int64).max, size=4, dtype=np.int64).astype(np.uint64)

    def encrypt(x: np.ndarray) -> np.ndarray:
        left, right = x >> half, x & mask
        for k in rounds:
            left, right = right, left ^ (_mix64(right ^ k) & mask)
        return (left << half) | right

    with np.errstate(over="ignore"):
        out = encrypt(idx.astype(np.uint64))
        outside = out >= np.uint64(n)
        while outside.any():  # cycle-walking: at most a few rounds since 2**bits < 4n
            out[outside] = encrypt(out[outside])
            outside = out >= np.uint64(n)
    return out.astype(np.int64)


class EpochWindowSampler(DistributedSampler):
    """Random windows per epoch, reproducible from (seed, epoch), optionally weighted by group and
    sharded over ranks.

    Each epoch draws ``num_samples`` windows (all windows when None): distinct windows in random
    order, and repeated passes when more are asked than exist. With ``group_sizes``/``weights``
    (a mixture), the epoch holds ``round(weight_k / sum(weights) * num_samples)`` windows of group
    k (largest remainders, so the counts add up), each drawn from the group's own block of window
    numbers, interleaved in random order. Every rank computes the same draw and keeps positions
    ``rank, rank + world_size, ...`` (padded by wrapping, as ``DistributedSampler``), so ranks get
    disjoint shares of equal size; being a ``DistributedSampler``, Lightning uses it as is.
    The draw is computed lazily, a chunk at a time: memory does not grow with the data.

    Args:
        n_windows: window numbers are 0 .. n_windows - 1 (groups are consecutive blocks).
        num_samples: windows per epoch over all ranks (None: n_windows).
        seed: seed of the draws.
        group_sizes: windows per group, summing to n_windows (None: one group).
        weights: mixture weight per group (None: proportional to the group sizes, i.e. uniform windows).
        rank, world_size: this process's shard.
    """

    CHUNK = 65536

    def __init__(
        self,
        n_windows: int,
        num_samples: int | None = None,
        seed: int = 0,
        group_sizes: Sequence[int] | None = None,
        weights: Sequence[float] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n_windows <= 0:
            raise ValueError("EpochWindowSampler needs at least one window")
        self.n_windows, self.seed, self.epoch = int(n_windows), int(seed), 0
        self.epoch_samples = self.n_windows if num_samples is None else int(num_samples)
        self.rank, self.num_replicas = int(rank), int(world_size)
        self.shuffle, self.drop_last = True, False
        self.group_sizes = np.array([n_windows] if group_sizes is None else list(group_sizes), dtype=np.int64)
        if self.group_sizes.sum() != self.n_windows:
            raise ValueError(f"group sizes {self.group_sizes.tolist()} do not add up to {n_windows} windows")
        self.weights = np.asarray(self.group_sizes if weights is None else list(weights), dtype=np.float64)
        if len(self.weights) != len(self.group_sizes) or (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ValueError(f"mixture weights {self.weights.tolist()} must be >= 0, one per group, not all 0")
        if ((self.weights > 0) & (self.group_sizes == 0)).any():
            raise ValueError("a group with a positive mixture weight has no windows")
        self.group_counts = self._counts()
        self.num_samples = -(-self.epoch_samples // self.num_replicas)  # per rank, as DistributedSampler
        self.total_size = self.num_samples * self.num_replicas

    def _counts(self) -> np.ndarray:
        """Windows of each group per epoch: the weights' shares of epoch_samples, largest remainders."""
        share = self.weights / self.weights.sum() * self.epoch_samples
        counts = np.floor(share).astype(np.int64)
        rest = self.epoch_samples - counts.sum()
        counts[np.argsort(-(share - counts), kind="stable")[:rest]] += 1
        return counts

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draw (Lightning calls this at each epoch start)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def draw(self, positions: np.ndarray) -> np.ndarray:
        """Window numbers at epoch positions int64 [K] (each in [0, epoch_samples))."""
        positions = np.asarray(positions, dtype=np.int64)
        group_first = np.concatenate([[0], np.cumsum(self.group_sizes)[:-1]])
        if len(self.group_sizes) > 1:  # interleave the groups' draws in random order
            positions = permute(positions, self.epoch_samples, (self.seed, self.epoch, -1))
            count_ends = np.cumsum(self.group_counts)
            group = np.searchsorted(count_ends, positions, side="right")
            local = positions - (count_ends[group] - self.group_counts[group])
        else:
            group, local = np.zeros_like(positions), positions
        out = np.empty_like(positions)
        for g in np.unique(group):
            sel = group == g
            size = int(self.group_sizes[g])
            rep, q = np.divmod(local[sel], size)
            res = np.empty_like(q)
            for r in np.unique(rep):  # each repeated pass is its own permutation
                at = rep == r
                res[at] = permute(q[at], size, (self.seed, self.epoch, int(g), int(r)))
            out[sel] = group_first[g] + res
        return out

    def __iter__(self) -> Iterator[int]:
        for lo in range(self.rank, self.total_size, self.num_replicas * self.CHUNK):
            positions = np.arange(lo, min(lo + self.num_replicas * self.CHUNK, self.total_size),
                                  self.num_replicas, dtype=np.int64) % self.epoch_samples
            yield from self.draw(positions).tolist()


class ShardSampler(DistributedSampler):
    """Sequential window numbers of one rank's shard (``rank, rank + world_size, ...``, padded by
    wrapping as ``DistributedSampler``), generated lazily: validation and test loaders."""

    def __init__(self, n_windows: int, rank: int = 0, world_size: int = 1) -> None:
        self.n_windows, self.rank, self.num_replicas = int(n_windows), int(rank), int(world_size)
        self.shuffle, self.drop_last, self.epoch, self.seed = False, False, 0, 0
        self.num_samples = -(-self.n_windows // self.num_replicas) if self.n_windows else 0
        self.total_size = self.num_samples * self.num_replicas

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        for j in range(self.rank, self.total_size, self.num_replicas):
            yield j % self.n_windows
