"""The one up-front config check: every bad value is one line naming the key, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from kronos.config_checks import ConfigValueError, check_config
from kronos.train import CONFIG_DIR


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


# (override, key named in the message): each was a traceback, Hydra's exit 1 or silently accepted before.
BAD = [
    ("name=..", "name"), ("name=a/b", "name"), ("name=", "name"),
    ("data.clip=0", "data.clip"), ("data.clip=nan", "data.clip"), ("data.lookback=abc", "data.lookback"),
    ("data.num_workers=-1", "data.num_workers"), ("data.samples_per_epoch=0", "data.samples_per_epoch"),
    ("data.features=[open,hgh]", "data.features"), ("data.splits.train=1.5", "data.splits.train"),
    ("data.train_members_only=maybe", "data.train_members_only"),
    ("optim.grad_clip=-1", "optim.grad_clip"), ("optim.lr=nan", "optim.lr"), ("optim.weight_decay=inf", "optim.weight_decay"),
    ("optim.betas=[0.9]", "optim.betas"), ("optim.accumulate=0", "optim.accumulate"),
    ("trainer.max_steps=0", "trainer.max_steps"), ("trainer.max_epochs=0", "trainer.max_epochs"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches"), ("trainer.precision=12", "trainer.precision"),
    ("trainer.log_every_n_steps=abc", "trainer.log_every_n_steps"),
    ("monitor.mode=best", "monitor.mode"), ("seed=-3", "seed"), ("compile=yes", "compile"),
    ("backtest.topk=abc", "backtest.topk"), ("backtest.account=nan", "backtest.account"),
    ("backtest.costs.open_cost=nan", "backtest.costs.open_cost"), ("backtest.hold_thresh=1.5", "backtest.hold_thresh"),
    ("evaluate.stride=nan", "evaluate.stride"), ("evaluate.pit_bins=-1", "evaluate.pit_bins"),
    ("evaluate.batch_size=0", "evaluate.batch_size"),
    ("data=mixture data.source.components.market_a.weight=abc", "data.source.components.market_a.weight"),
    ("data=mixture data.source.components.market_b.weight=-1", "data.source.components.market_b.weight"),
    ("stage.loss_targets=foo", "stage.loss_targets"), ("stage.sampled_s1=maybe", "stage.sampled_s1"),
    ("backtest.start=notadate", "backtest.start"), ("evaluate.split=foo", "evaluate.split"),
    ("data.benchmark=5", "data.benchmark"), ("trainer.devices=0", "trainer.devices"),
    ("trainer.accelerator=tpuu", "trainer.accelerator"),
    ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience"),
    ("weights.tokenizer=5", "weights.tokenizer"),
]


@pytest.mark.parametrize(("override", "key"), BAD)
def test_bad_values_are_refused_naming_the_key(override: str, key: str) -> None:
    cfg = _compose(*override.split(" "))
    with pytest.raises(ConfigValueError) as info:
        check_config(cfg, list(cfg.stage.run))
    message = str(info.value)
    assert message.startswith(f"{key}=") and "pass e.g." in message and "\n" not in message


@pytest.mark.parametrize("overrides", [
    (), ("data=mixture",), ("experiment=csi300_small",), ("experiment=crypto_hourly",), ("experiment=csi300_finetune",),
    ("trainer=ddp",), ("trainer=ddp_cpu",), ("trainer=mps",), ("trainer.devices=[0,1]",), ("stage=predictor",),
    ("data=parquet",), ("data=qlib_csi300",), ("hparams_search=optuna_lr_batch",),
    ("optim.grad_clip=null", "trainer.max_epochs=-1", "trainer.limit_train_batches=0.5", "name=run_1.b-2+c"),
])
def test_shipped_configs_pass(overrides: tuple[str, ...]) -> None:
    cfg = _compose(*overrides)
    check_config(cfg, list(cfg.stage.run))


def test_stage_blocks_are_checked_only_when_their_stage_runs() -> None:
    cfg = _compose("stage=evaluate", "trainer.max_steps=0", "backtest.account=nan")
    check_config(cfg, list(cfg.stage.run))  # neither trainer nor backtest is read by stage=evaluate


def test_name_dotdot_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    """Regression (hostile round): name=.. exported into the parent directory, replacing a user's ./tokenizer."""
    root = tmp_path / "outputs"
    root.mkdir()
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "mine.txt").write_text("keep")
    proc = subprocess.run([sys.executable, "-m", "kronos.train", "name=..", f"output_root={root}", "stage=tokenizer",
                           "trainer.accelerator=cpu"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and "name='..'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert (tmp_path / "tokenizer" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in (tmp_path / "tokenizer").iterdir()) == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs", "tokenizer"]  # not even Hydra's run directory


@pytest.mark.parametrize("key", ["..", ".", "../x", ".hidden", "/abs", ""])
def test_sweep_keys_always_name_a_directory_below_sweeps(tmp_path: Path, key: str) -> None:
    """A sweep key is a name used as a path: `..` put the job's exports into the experiment directory itself."""
    from kronos.experiment import Experiment

    job = Experiment(tmp_path / "exp").sweep(key)
    assert job.root.parent == tmp_path / "exp" / "sweeps" and not job.root.name.startswith(".")
    assert job.root.resolve().parent == (tmp_path / "exp" / "sweeps").resolve()
