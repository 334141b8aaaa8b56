"""The processes sharing one forecasting job: rank, world size and a barrier over torch.distributed.

``torchrun --nproc_per_node=N -m kronos.train stage=backtest trainer=ddp_cpu ...`` starts N processes with
``RANK``/``WORLD_SIZE`` set; the forecast store (kronos.inference.store) gives rank r every batch whose index
is r modulo N, each rank writes its own shards, and rank zero alone reads the store and writes the report.
The process group is the one Lightning set up when a training stage ran in the same command, else a gloo
group made here from torchrun's environment (``MASTER_ADDR``/``MASTER_PORT``), with a long timeout (ranks
wait for the slowest one's share of the forecasts).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch.distributed as dist

BARRIER_TIMEOUT = datetime.timedelta(hours=24)
# Where launchers put a process's global rank (torchrun, SLURM, LSF), in Lightning's order of trust.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def env_rank() -> int:
    """This process's global rank as the launcher set it (0 when not launched distributed).

    Used by stages that run without a Trainer (e.g. a separate ``stage=backtest`` under torchrun), so
    only rank zero writes reports.
    """
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return 0


@dataclass(frozen=True)
class Ranks:
    """This process's ``rank`` among ``world`` processes (0 of 1 when not launched distributed)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Ranks":
        """Read ``RANK``/``WORLD_SIZE`` (torchrun, or Lightning's own launcher); joins the process group when
        there are several processes and none is initialised yet. A non-zero rank without a world size (a
        launcher that sets only the rank) forecasts nothing and writes nothing."""
        rank = env_rank()
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1 or rank >= world:
            return cls(rank, 1)
        if dist.is_available() and not dist.is_initialized():
            dist.init_process_group("gloo", rank=rank, world_size=world, timeout=BARRIER_TIMEOUT)
        return cls(rank, world)

    @property
    def is_zero(self) -> bool:
        return self.rank == 0

    def mine(self, batch_index: int) -> bool:
        """Whether batch ``batch_index`` is this rank's to forecast (never, for a rank outside the world)."""
        return self.rank < self.world and batch_index % self.world == self.rank

    def barrier(self) -> None:
        """Wait for every rank (nothing with one process)."""
        if self.world > 1 and dist.is_available() and dist.is_initialized():
            dist.barrier()
