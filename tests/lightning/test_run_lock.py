"""One run per experiment directory; an unwritable output root is one line, exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kronos.run_lock import ExperimentDirError, hold_experiment
from kronos.train import train


def test_a_second_run_of_the_same_experiment_is_refused(tmp_path: Path, make_cfg) -> None:
    """Regression (hostile round): two runs at once collided in the CSV logger (traceback)."""
    cfg = make_cfg("stage=tokenizer")
    root = Path(cfg.output_root) / "t"
    with hold_experiment(root):
        with pytest.raises(ExperimentDirError, match="in use by another run"):
            train(cfg)
    assert not (root / "checkpoints").exists()
    with hold_experiment(root):  # released: the next run may go
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = ("import sys, time; from kronos.run_lock import hold_experiment\n"
            "with hold_experiment(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "exp")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(ExperimentDirError, match=f"pid {child.pid}"):
            with hold_experiment(tmp_path / "exp"):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with hold_experiment(tmp_path / "exp"):
        pass


def test_unwritable_experiment_directory_is_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ExperimentDirError, match="cannot write the experiment directory .*output_root"):
        with hold_experiment(tmp_path / "exp"):
            pass


def test_output_root_that_cannot_be_created_exits_2(tmp_path: Path) -> None:
    """A run directory Hydra cannot create (a file in the way, a read-only disk) is one line, exit 2."""
    blocker = tmp_path / "outputs"
    blocker.write_text("a file, not a directory")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kronos.train", f"output_root={blocker}", "name=x",
                           "stage=tokenizer", "trainer.accelerator=cpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - start < 60
    assert blocker.read_text() == "a file, not a directory"


def test_unknown_key_is_one_line_exit_2(tmp_path: Path) -> None:
    """Hydra's own refusal (a typo'd key) was exit 1 with a multi-line dump."""
    proc = subprocess.run([sys.executable, "-m", "kronos.train", "data.lookbak=5", f"output_root={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "data.lookbak" in proc.stderr, proc.stderr
