"""Compose the real Hydra config with small, fast overrides for training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from kronos.train import CONFIG_DIR

# A small synthetic market and a tiny model: one stage takes a few seconds on a CPU.
SMALL_MARKET = ["data.source.n_instruments=4", "data.source.n_steps=160"]
FAST_RUN = [
    "data.lookback=24",
    "data.horizon=4",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "callbacks.progress=null",
    "backtest.sampling.sample_count=1",
    "backtest.topk=2",
    "backtest.n_drop=1",
]
FAST = SMALL_MARKET + FAST_RUN


def compose_config(overrides: list[str]) -> DictConfig:
    """The real ``conf/train.yaml`` composed with ``overrides`` (as the command line would)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides)``: FAST settings, outputs under ``tmp_path``, experiment name ``t``."""

    def _make(*overrides: str, fast: bool = True) -> DictConfig:
        base = [f"output_root={tmp_path / 'outputs'}", "name=t"] + (FAST if fast else [])
        return compose_config(base + list(overrides))

    return _make
