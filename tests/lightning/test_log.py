"""The main job's log read with ``tail`` (issue 26, "The log"): with stdout not a terminal, training progress is
plain lines (no carriage-return bar frames) and the last lines are each stage's headline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kronos.lightning.progress import LineProgress, progress_bar
from kronos.stages.table import STAGES
from tests.conftest import REPO_ROOT
from tests.lightning.conftest import SMALL_MARKET

QUICK = [*SMALL_MARKET, "data.lookback=24", "data.horizon=4", "data.batch_size=16", "trainer.accelerator=cpu",
         "trainer.max_steps=6", "trainer.limit_val_batches=2", "backtest.sampling.sample_count=1", "backtest.topk=2",
         "backtest.n_drop=1", "evaluate.sampling.sample_count=2", "evaluate.task_options.classifier_epochs=1",
         "evaluate.task_options.max_windows=20", "evaluate.task_options.garch_refit_every=50"]


def test_a_log_file_gets_line_progress() -> None:
    """Under pytest stdout is captured (not a terminal): the progress callback is the line writer."""
    assert not sys.stdout.isatty()
    bar = progress_bar(stage="tokenizer")
    assert isinstance(bar, LineProgress) and bar.stage == "tokenizer"


@pytest.mark.slow
def test_main_job_log_has_no_bar_frames_and_ends_with_the_headlines(tmp_path: Path) -> None:
    log_file = tmp_path / "run.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log_file.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "kronos.train", f"output_root={tmp_path / 'outputs'}", "name=log",
                               *QUICK], stdout=out, stderr=subprocess.PIPE, text=True, timeout=900, cwd=tmp_path,
                              env=env)
    text = log_file.read_text()
    assert proc.returncode == 0, proc.stderr[-3000:] + text[-3000:]
    assert "\r" not in text, "a progress bar wrote carriage-return frames into the log"
    lines = text.splitlines()
    assert any("tokenizer: step 6/6 (100%)" in line for line in lines), "training progress is logged as lines"
    tail = "\n".join(lines[-25:])
    for name in STAGES:
        assert f"] - {name}: " in tail or f" {name}: " in tail, f"the last lines lack the {name} headline:\n{tail}"
    assert "tokenizer: exported to" in tail and "predictor: exported to" in tail
    assert "backtest: " in tail and "evaluate: accuracy: " in tail
    assert lines[-1].rstrip().split(" - ", 1)[-1].startswith("done: ")
