"""`optim.lr` is the peak rate of every stage that runs; unset, each stage takes `model.lr.<stage>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from kronos.train import train


class RecordingAdamW(torch.optim.AdamW):
    """AdamW that remembers the learning rate each instance was built with (the stage's peak rate)."""

    built: ClassVar[list[float]] = []

    def __init__(self, params: Any, lr: float, **kwargs: Any) -> None:
        RecordingAdamW.built.append(lr)
        super().__init__(params, lr=lr, **kwargs)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    monkeypatch.setattr(RecordingAdamW, "built", [])
    return RecordingAdamW.built


def _trained_lr(export: str) -> float:
    return json.loads((Path(export) / "training_info.json").read_text())["config"]["optim"]["lr"]


SPY = f"optim.optimizer._target_={RecordingAdamW.__module__}.RecordingAdamW"


def test_optim_lr_sets_every_stage_under_stage_all(make_cfg, recorded: list[float]) -> None:
    """Regression: under stage=all, `stage.lr.*` and a rewrite in train() replaced optim.lr=1e-5 by 1e-3."""
    out = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", "optim.lr=1e-5", SPY,
                         "trainer.fast_dev_run=true"))
    assert recorded == [1e-5, 1e-5]
    assert _trained_lr(out["tokenizer"]) == _trained_lr(out["predictor"]) == 1e-5


def test_unset_lr_takes_each_stage_default_from_the_model(make_cfg, recorded: list[float]) -> None:
    out = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]", "model.lr.tokenizer=2e-3",
                         "model.lr.predictor=5e-4", SPY, "trainer.fast_dev_run=true"))
    assert recorded == [2e-3, 5e-4]
    assert (_trained_lr(out["tokenizer"]), _trained_lr(out["predictor"])) == (2e-3, 5e-4)


def test_separate_stage_honours_optim_lr(make_cfg, recorded: list[float]) -> None:
    out = train(make_cfg("stage=tokenizer", "optim.lr=3e-4", SPY, "trainer.fast_dev_run=true"))
    assert recorded == [3e-4] and _trained_lr(out["tokenizer"]) == 3e-4
