"""stage=backtest through `kronos.train`: weights by the one rule, recorded in metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

from kronos.train import train
from tests.lightning.conftest import FAST, compose_config


def test_backtest_stage_loads_override_weights_and_records_them(tmp_path: Path, tiny_pair) -> None:
    tokenizer, predictor = tiny_pair
    cfg = compose_config([*FAST, f"output_root={tmp_path}", "name=t", "stage=backtest", "logger=csv",
                          f"++weights.tokenizer={tokenizer}", f"++weights.predictor={predictor}"])
    result = train(cfg)
    metrics = json.loads((tmp_path / "t" / "backtest" / "metrics.json").read_text())
    assert metrics["weights"] == {"tokenizer": {"location": str(tokenizer), "origin": "override"},
                                  "predictor": {"location": str(predictor), "origin": "override"}}
    assert metrics["settings"]["anchor"] == "last_close" and metrics["settings"]["sampling"]["seed"] == cfg.seed
    assert metrics["headline_label"] == "trade_return"
    assert (tmp_path / "t" / "qlib_provider" / "calendars" / "day.txt").is_file()  # Experiment.provider_dir
    assert result["backtest"]["n_forecasts"] == metrics["n_forecasts"] > 0


def test_bad_backtest_setting_exits_2_with_one_message(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.lightning.conftest import SMALL_MARKET

    cmd = [sys.executable, "-m", "kronos.train", "stage=backtest", f"output_root={tmp_path}", "name=t",
           *SMALL_MARKET, "data.lookback=24", "data.horizon=4", "backtest.anchor=observed"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"HYDRA_FULL_ERROR": "0"}, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "backtest.anchor='observed' is not one of ['last_close', 'reconstructed']" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_sampling_stops_stage_all_before_training(tmp_path: Path) -> None:
    """backtest.sampling.T=nan is refused at start (before any training), and an old flat key names the new one."""
    import pytest

    from kronos.backtest.settings import BacktestSettingsError

    for override, message in (("backtest.sampling.T=nan", "backtest.sampling.T must be between 0.01 and 100"),
                              ("+backtest.T=0.5", "backtest.T -> backtest.sampling.T")):
        cfg = compose_config([*FAST, f"output_root={tmp_path}", "name=t", "stage=all", "logger=csv", override])
        with pytest.raises(BacktestSettingsError, match=message.replace(".", r"\.")):
            train(cfg)
        assert not (tmp_path / "t" / "checkpoints").exists()


def test_old_flat_sampling_override_on_the_command_line_exits_2_naming_the_new_key(tmp_path: Path) -> None:
    """``backtest.T=0.5`` would be refused by Hydra in its own words; the entry point names the new key first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kronos.train", "stage=backtest", f"output_root={tmp_path}",
                           "backtest.T=0.5", "evaluate.seed=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == ("error: backtest.T moved into the backtest.sampling block: write "
                                   "backtest.T -> backtest.sampling.T")
    assert not any(tmp_path.iterdir())
