"""The README's main job learns the synthetic market's planted signal, measured honestly, in ranking and money.

`python -m kronos.train` (tiny model, synthetic market, all stages, ~2-3 minutes on 2 CPU cores) over
three seeds, with the default headline signal (``trade``: the paths' predicted return over exactly the
traded interval): its RankIC on the headline label of ``backtest/metrics.json`` (the return a portfolio
trading at the next close earns) is significant (t > 2); the long-short quantile spread is positive with
t > 2; the quantile returns rise from the bottom to the top quantile; the top-k alpha before cost is
positive. The ``mean`` signal (``model_mean`` in ``signals.csv``) ranks both close(t) -> close(t+1) and
close(t+1) -> close(t+2) significantly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kronos.train import train
from scripts.investigate_loss_targets import signal_skill
from tests.lightning.conftest import compose_config


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_main_job_learns_the_planted_signal(seed: int, tmp_path: Path) -> None:
    result = train(compose_config([f"output_root={tmp_path}", "name=main", f"seed={seed}", "callbacks.progress=null",
                                   "backtest.anchor=last_close"]))
    backtest = Path(result["run_dir"], "backtest")
    metrics = json.loads((backtest / "metrics.json").read_text())
    assert metrics["settings"]["anchor"] == "last_close" and metrics["signal"] == "trade"
    model = metrics["model"]
    headline = model["ic"][metrics["headline_label"]]
    assert headline["rank_ic_t"] > 2.0, headline
    factor = model["factor"]
    assert factor["spread"]["mean"] > 0 and factor["spread"]["t"] > 2.0, factor
    means = factor["quantile_returns"]
    assert all(b > a for a, b in zip(means, means[1:])), means
    assert model["portfolio"]["alpha"]["annualized"] > 0, model["portfolio"]["alpha"]
    skill = signal_skill(backtest / "signals.csv", columns=("model_mean",))["model_mean"]
    for label in ("next_return", "tradable_return"):
        assert skill[label]["t"] > 2.0, skill
