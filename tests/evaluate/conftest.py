"""Compose the real Hydra config for fast ``stage=evaluate`` runs on a small synthetic market."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from kronos.train import CONFIG_DIR

FAST_EVALUATE = [
    "data.source.n_instruments=4",
    "data.source.n_steps=160",
    "data.lookback=24",
    "data.horizon=4",
    "data.batch_size=16",
    "evaluate.sampling.sample_count=4",
    "evaluate.stride=2",
    "evaluate.device=cpu",
]


@pytest.fixture
def evaluate_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``evaluate_cfg(*overrides)``: stage=evaluate, experiment ``t`` under ``tmp_path/outputs``."""

    def _make(*overrides: str) -> DictConfig:
        base = [f"output_root={tmp_path / 'outputs'}", "name=t", "stage=evaluate", *FAST_EVALUATE]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name="train", overrides=base + list(overrides))

    return _make
