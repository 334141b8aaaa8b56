"""Resuming from a bad checkpoint, or with other data settings, is one line naming ckpt_path, before fitting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kronos.experiment import Experiment
from kronos.stages.common import StageInputError
from kronos.train import train


@pytest.fixture
def trained(make_cfg) -> Path:
    """One tiny tokenizer run; returns its last.ckpt."""
    cfg = make_cfg("stage=tokenizer")
    train(cfg)
    last = Experiment.from_config(cfg).last_checkpoint("tokenizer")
    assert last.is_file()
    return last


def test_resume_after_changing_lookback_is_refused(make_cfg, trained: Path) -> None:
    """Regression (hostile round): a resume after changing data.lookback proceeded silently."""
    before = trained.read_bytes()
    with pytest.raises(StageInputError, match=r"other data settings \(data.lookback: 24 in the checkpoint, 20 now\)"):
        train(make_cfg("stage=tokenizer", "ckpt_path=last", "data.lookback=20"))
    assert trained.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "empty", "not_torch"])
def test_damaged_checkpoint_is_refused(make_cfg, trained: Path, tmp_path: Path, damage: str) -> None:
    """Regression (hostile round): ckpt_path to a truncated or empty file ended in a traceback."""
    bad = tmp_path / f"{damage}.ckpt"
    data = trained.read_bytes()
    bad.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "not_torch": b"hello, not a checkpoint"}[damage])
    with pytest.raises(StageInputError, match=f"ckpt_path={bad} is "):
        train(make_cfg("stage=tokenizer", f"ckpt_path={bad}"))


def test_checkpoint_of_another_size_is_refused(make_cfg, trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.ckpt"
    shutil.copy(trained, other)
    with pytest.raises(StageInputError, match="holds a model of another shape"):
        train(make_cfg("stage=tokenizer", f"ckpt_path={other}", "model.tokenizer.config.d_model=32"))
