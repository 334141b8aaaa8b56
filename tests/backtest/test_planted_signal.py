"""The README's main job learns the synthetic market's planted signal: positive RankIC after training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kronos.train import train
from tests.lightning.conftest import compose_config


@pytest.mark.slow
def test_main_job_ranks_the_planted_signal(tmp_path: Path) -> None:
    """`python -m kronos.train` defaults (tiny model, synthetic data, all stages), about a minute of training."""
    result = train(compose_config([f"output_root={tmp_path}", "name=main", "callbacks.progress=null"]))
    metrics = json.loads(Path(result["run_dir"], "backtest", "metrics.json").read_text())
    ic = metrics["model"]["ic"]
    assert ic["next_return"]["rank_ic"] > 0.0, ic
    assert ic["horizon_return"]["rank_ic"] > 0.0, ic
    assert metrics["model"]["portfolio"]["excess_return_without_cost"]["annualized_return"] > 0.0
