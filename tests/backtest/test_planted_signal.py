"""The README's main job learns the synthetic market's planted signal, measured honestly.

`python -m kronos.train` (tiny model, synthetic market, all stages, ~2-3 minutes on 2 CPU cores) over
three seeds: the trained model's RankIC, with predicted returns measured from the observed last
close, is significant (t > 2) on the headline label of ``backtest/metrics.json`` (the return a
portfolio trading at the next close earns) and, computed here from ``backtest/signals.csv``, on
both close(t) -> close(t+1) and close(t+1) -> close(t+2).
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
    assert metrics["settings"]["anchor"] == "last_close"
    headline = metrics["model"]["ic"][metrics["headline_label"]]
    assert headline["rank_ic_t"] > 2.0, headline
    skill = signal_skill(backtest / "signals.csv", columns=("model",))["model"]
    for label in ("next_return", "tradable_return"):
        assert skill[label]["t"] > 2.0, skill
