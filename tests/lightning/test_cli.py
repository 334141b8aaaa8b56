"""`python -m kronos.train` as a user runs it: bad input, every experiment file, every config group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from kronos.data.errors import DataValidationError
from kronos.experiment import Experiment
from kronos.stages.fit import build_predictor
from kronos.train import CONFIG_DIR, train
from tests.config.test_instantiate import SMOKE_MAX_PREDICTOR_PARAMS
from tests.lightning.conftest import FAST_RUN, SMALL_MARKET, compose_config

REPO = Path(__file__).resolve().parents[2]


def _run_train(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "kronos.train", f"output_root={tmp_path / 'outputs'}", "name=cli", *overrides]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def _good_frame(n: int = 120) -> str:
    """A clean hourly CSV with aliased column names (date, vol) and no amount column."""
    rows = ["date,open,high,low,close,vol"]
    for i, ts in enumerate(pd.date_range("2024-01-01", periods=n, freq="h")):
        p = 10 + 0.01 * i
        rows.append(f"{ts:%Y-%m-%d %H:%M},{p:.2f},{p + 0.1:.2f},{p - 0.1:.2f},{p:.2f},{100 + i}")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda rows: [rows[0].replace(",close", ",closing")] + rows[1:], "close"),
        (lambda rows: rows[:5] + [rows[5].replace(rows[5].split(",")[4], "")] + rows[6:], "NaN"),
        (lambda rows: rows[:7] + [rows[7].replace(rows[7].split(",")[2], "abc")] + rows[8:], "high"),
        (lambda rows: rows[:3] + [rows[4], rows[3]] + rows[5:], "sort"),
        (lambda rows: rows[:3] + [rows[3], rows[3]] + rows[4:], "duplicate"),
        (lambda rows: rows[:10], "rows"),
    ],
    ids=["missing-column", "nan", "non-numeric", "unsorted", "duplicated", "too-few-rows"],
)
def test_bad_csv_stops_before_training(tmp_path: Path, make_cfg, mutate, expect: str) -> None:
    rows = _good_frame().strip().split("\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(mutate(rows)) + "\n")
    cfg = make_cfg("data=csv", f"data.source.path={bad}", "data.lookback=20", "data.horizon=5", fast=False)
    with pytest.raises(DataValidationError) as err:
        train(cfg)
    message = str(err.value)
    assert "bad.csv" in message and expect.lower() in message.lower()
    if expect in ("NaN", "high", "sort", "duplicate"):  # repairable: the message names the cleaning command
        assert "data_pipelines.clean_csv" in message
    experiment = Experiment.from_config(cfg)
    assert not experiment.tokenizer_dir.exists() and not experiment.checkpoint_dir("tokenizer").exists()


def test_cli_reports_bad_input_without_traceback(tmp_path: Path) -> None:
    proc = _run_train(tmp_path, "data=csv", f"data.source.path={tmp_path / 'nope.csv'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "nope.csv" in proc.stderr and "Traceback" not in proc.stderr


EXPERIMENTS = sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_smoke_runs(experiment: str, tmp_path: Path, tiny_pair: tuple[Path, Path]) -> None:
    """Each experiment file composes and runs one fast_dev_run step of tokenizer and predictor with its
    own model shape (published starting points swapped for the tiny published-format pair, shapes too
    large for a CPU test for the tiny one), on synthetic data so neither network nor shared data is needed."""
    overrides = [
        f"experiment={experiment}", f"output_root={tmp_path / 'outputs'}",
        *FAST_RUN, "trainer.fast_dev_run=true", "stage=all", "stage.run=[tokenizer,predictor]",
    ]
    cfg = compose_config(overrides)
    if cfg.model.tokenizer.get("pretrained") or cfg.model.predictor.get("pretrained"):
        tokenizer, predictor = tiny_pair
        overrides += [f"model.tokenizer.pretrained={tokenizer}", f"model.predictor.pretrained={predictor}"]
    elif sum(p.numel() for p in build_predictor(cfg).parameters()) > SMOKE_MAX_PREDICTOR_PARAMS:
        overrides.append("model=tiny")
    cfg = compose_config(overrides)
    synthetic = OmegaConf.load(Path(CONFIG_DIR) / "data" / "synthetic.yaml")
    cfg.data.source, cfg.data.splits = synthetic.source, synthetic.splits
    for override in SMALL_MARKET:
        key, value = override.split("=")
        OmegaConf.update(cfg, key, int(value))
    out = train(cfg)
    info = json.loads(Path(out["predictor"], "training_info.json").read_text())
    assert info["config"]["name"] == experiment
    expected_shape = (json.loads((tiny_pair[1] / "config.json").read_text()) if cfg.model.predictor.get("pretrained")
                      else OmegaConf.to_container(cfg.model.predictor.config, resolve=True))
    assert info["model_config"] == expected_shape


@pytest.mark.realdata
def test_csv_run_on_real_crypto_data(tmp_path: Path, data_dir: Path) -> None:
    proc = _run_train(
        tmp_path, "stage=all", "stage.run=[tokenizer,predictor]", "data=csv",
        f"data.source.path={data_dir / 'crypto_binance_1h' / 'BNBUSDT_1h_clean.csv'}",
        "data.lookback=48", "data.horizon=6", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=2", "model=tiny",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "outputs" / "cli" / "predictor" / "training_info.json").is_file()
