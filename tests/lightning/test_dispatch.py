"""train() dispatches each stage name to its runner; reports come from rank zero only."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from kronos.experiment import Experiment
from kronos.train import train


def test_separate_backtest_writes_from_rank_zero_only(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun every rank runs stage=backtest; only rank zero may write the report."""
    first = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", "trainer.fast_dev_run=true"))
    experiment = Experiment(Path(first["run_dir"]))
    monkeypatch.setenv("RANK", "1")
    result = train(make_cfg("stage=backtest"))
    assert "backtest" not in result and not experiment.backtest_dir.exists()
    monkeypatch.setenv("RANK", "0")
    assert train(make_cfg("stage=backtest"))["backtest"]["n_forecasts"] > 0
    assert (experiment.backtest_dir / "metrics.json").is_file()


def test_evaluate_stage_is_dispatched_on_rank_zero(make_cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    """stage name `evaluate` reaches kronos.stages.evaluate.evaluate_stage(cfg, datamodule, experiment, produced)."""
    calls = []

    def evaluate_stage(cfg, datamodule, experiment, produced):  # noqa: ANN001, ANN202
        calls.append((cfg.stage.current, type(datamodule).__name__, experiment, dict(produced)))
        return {"origins": 0}

    monkeypatch.setitem(sys.modules, "kronos.stages.evaluate", types.SimpleNamespace(evaluate_stage=evaluate_stage))
    cfg = make_cfg("stage=all", "stage.run=[tokenizer,predictor,evaluate]", "trainer.fast_dev_run=true")
    result = train(cfg)
    experiment = Experiment.from_config(cfg)
    assert result["evaluate"] == {"origins": 0}
    produced = {"tokenizer": experiment.tokenizer_dir, "predictor": experiment.predictor_dir}
    assert calls == [("evaluate", "KronosDataModule", experiment, produced)]

    monkeypatch.setenv("RANK", "1")  # every rank runs the stage (it shares the forecasts); rank zero alone reports
    assert "evaluate" not in train(make_cfg("stage=all", "stage.run=[evaluate]")) and len(calls) == 2

    # Without any export evaluate still runs: it may score only evaluate.models (its own decision).
    monkeypatch.setenv("RANK", "0")
    assert train(make_cfg("stage=all", "stage.run=[evaluate]", "name=empty"))["evaluate"] == {"origins": 0}


def test_unknown_stage_is_refused_before_training(make_cfg) -> None:
    from kronos.stages.common import StageInputError

    cfg = make_cfg("stage=all", "stage.run=[tokenizer,evaluat]")
    with pytest.raises(StageInputError, match=r"unknown stage\(s\) \['evaluat'\]"):
        train(cfg)
    assert not Experiment.from_config(cfg).root.exists()


def test_bad_evaluate_setting_stops_stage_all_before_training(make_cfg) -> None:
    """stage=all ends with evaluate: a bad evaluate.* key must be named before a single training step."""
    from kronos.config_checks import ConfigValueError
    from kronos.evaluate.settings import EvaluateConfigError

    cfg = make_cfg("stage=all", "evaluate.stride=0")
    with pytest.raises((EvaluateConfigError, ConfigValueError), match="stride"):
        train(cfg)
    assert not Experiment.from_config(cfg).checkpoint_dir("tokenizer").exists()


def test_long_sweep_overrides_never_share_a_job_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: overrides longer than 80 characters (any data path) made the key `job<num>`, so job 0 of a second
    sweep with other values wrote into the first sweep's job0 directory, replacing its exports."""
    from types import SimpleNamespace

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    import kronos.train as train_module

    def key_for(overrides: str, num: int = 0) -> str | None:
        hc = SimpleNamespace(mode=RunMode.MULTIRUN, job=SimpleNamespace(override_dirname=overrides, num=num))
        monkeypatch.setattr(train_module, "HydraConfig", SimpleNamespace(initialized=lambda: True, get=lambda: hc))
        return train_module._sweep_key(OmegaConf.create({"sweep_key": None}))

    data = "data=csv,data.source.path=/home/quant/projects/us_equities/daily/sp500_members_2010_2024.csv"
    first, second = key_for(f"{data},optim.lr=0.001"), key_for(f"{data},optim.lr=0.003")
    assert first != second and first.startswith("job0") and len(first) <= 80
    assert key_for(f"{data},optim.lr=0.001") == first  # the same job again (resume) finds its directory
    assert key_for("optim.lr=0.001") == "optim.lr=0.001"  # short overrides stay readable


@pytest.mark.parametrize("override, key", [("optim.lr=abc", "optim.lr"), ("optim.lr=-1", "optim.lr"),
                                           ("data.lookback=0", "data.lookback"), ("data.horizon=-2", "data.horizon")])
def test_bad_numbers_are_one_message_naming_the_key(override: str, key: str, tmp_path: Path) -> None:
    """Typos in numeric settings end in one line and exit 2 before any data is read (was a traceback, rc 1)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "kronos.train", override, f"output_root={tmp_path}", "name=n",
                           "trainer.accelerator=cpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert key in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "n" / "checkpoints").exists()
