"""Runs shorter than an epoch validate at the end and export."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kronos import Kronos, KronosTokenizer
from kronos.experiment import Experiment
from kronos.train import train
from tests.lightning.conftest import FAST

REPO = Path(__file__).resolve().parents[2]


def _info(export: Path) -> dict:
    return json.loads((export / "training_info.json").read_text())


SHORT = ["trainer.max_steps=6", "trainer.max_epochs=5", "trainer.limit_train_batches=15"]  # an epoch: 15 steps


def test_max_steps_shorter_than_an_epoch_from_the_command_line(tmp_path: Path) -> None:
    """Regression: `python -m kronos.train trainer.max_steps=6` ended in a traceback (EarlyStopping
    asked for val/loss before any validation ran)."""
    cmd = [sys.executable, "-m", "kronos.train", f"output_root={tmp_path / 'outputs'}", "name=short", *FAST,
           "stage=tokenizer", *SHORT, "trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = Experiment(tmp_path / "outputs" / "short").tokenizer_dir
    info = _info(export)
    assert info["global_step"] == 6 and math.isfinite(info["best_validation"]["value"])
    KronosTokenizer.from_pretrained(export)


def test_max_steps_run_of_both_stages_validates_and_exports(make_cfg) -> None:
    out = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", *SHORT))
    for kind, cls in (("tokenizer", KronosTokenizer), ("predictor", Kronos)):
        info = _info(Path(out[kind]))
        assert info["global_step"] == 6  # stopped mid-epoch ...
        assert info["weights"] == "best checkpoint" and math.isfinite(info["best_validation"]["value"])  # ... validated
        cls.from_pretrained(out[kind])


@pytest.mark.parametrize("limits", [["trainer.limit_train_batches=2"], ["trainer.limit_train_batches=0.05"]])
def test_limited_train_batches_validate_and_export(make_cfg, limits: list[str]) -> None:
    out = train(make_cfg("stage=tokenizer", *limits))
    info = _info(Path(out["tokenizer"]))
    assert info["global_step"] >= 1 and math.isfinite(info["best_validation"]["value"])
