"""Backtest test fixtures: a small synthetic datamodule, its Qlib provider and a fake predictor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kronos.data.qlib_provider import build_provider_from_panel
from kronos.data.datamodule import KronosDataModule
from kronos.data.synthetic import SyntheticSource

LOOKBACK, HORIZON = 20, 3


class PersistenceFake:
    """Predicts the last lookback row for every horizon step; sample s adds (s - (S-1)/2) * spread,
    so the sample mean is exactly the last row. Records the shapes it was called with."""

    def __init__(self, spread: float = 0.3) -> None:
        self.spread = spread
        self.calls: list[dict[str, object]] = []

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, lengths=None, generator=None):
        sample_count = sampling.sample_count
        self.calls.append({"x": tuple(x.shape), "x_stamp": tuple(x_stamp.shape), "y_stamp": y_stamp.clone(),
                           "sampling": sampling, "generator": generator})
        horizon = y_stamp.shape[1]
        last = x[:, -1:, :].unsqueeze(1).expand(-1, sample_count, horizon, -1)
        offsets = (torch.arange(sample_count, dtype=torch.float32) - (sample_count - 1) / 2) * self.spread
        return last + offsets.view(1, -1, 1, 1)


def make_datamodule(n_instruments: int = 12, n_steps: int = 200) -> KronosDataModule:
    """A small synthetic datamodule: ~30% of the calendar is the test split."""
    source = SyntheticSource(n_instruments=n_instruments, n_steps=n_steps, seed=3, signal_strength=0.15)
    return KronosDataModule(source, lookback=LOOKBACK, horizon=HORIZON,
                            splits={"train": 0.6, "val": 0.1, "test": 0.3}, batch_size=16, seed=0)


@pytest.fixture(scope="module")
def datamodule() -> KronosDataModule:
    return make_datamodule()


@pytest.fixture(scope="module")
def provider(datamodule: KronosDataModule, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qlib provider built by data_pipelines.csv_to_qlib from the synthetic panel."""
    return build_provider_from_panel(datamodule.panel, tmp_path_factory.mktemp("qlib") / "provider")


class DriftFake(PersistenceFake):
    """Persistence plus a random per-window drift (drawn by the sampling generator), identical across samples."""

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, lengths=None, generator=None):
        paths = super().forecast_normalized(x, x_stamp, y_stamp, sampling, lengths, generator)
        steps = torch.arange(1, y_stamp.shape[1] + 1, dtype=torch.float32).view(1, 1, -1, 1)
        return paths + 0.2 * torch.randn(x.shape[0], 1, 1, 1, generator=generator) * steps
