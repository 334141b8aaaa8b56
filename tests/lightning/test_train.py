"""The training core: every stage from the real config, export round trip, fine-tuning, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.train import train


def _info(path: Path) -> dict:
    return json.loads((path / "training_info.json").read_text())


def test_each_stage_with_fast_dev_run(make_cfg) -> None:
    tok = train(make_cfg("stage=tokenizer", "trainer.fast_dev_run=true"))
    tok_dir = Path(tok["tokenizer"])
    assert (tok_dir / "config.json").is_file() and (tok_dir / "model.safetensors").is_file()

    pred = train(make_cfg("stage=predictor", "trainer.fast_dev_run=true"))
    pred_dir = Path(pred["predictor"])
    assert pred_dir.parent == tok_dir.parent  # both stages chain through outputs/<name>/
    info = _info(pred_dir)
    assert info["stage"] == "predictor" and info["world_size"] == 1
    assert info["config"]["data"]["lookback"] == 24
    assert info["data"]  # the data summary travels with the weights

    bt = train(make_cfg("stage=backtest", "backtest.simulate=[model,momentum,reversal]"))
    metrics = json.loads((tok_dir.parent / "backtest" / "metrics.json").read_text())
    assert metrics["n_forecasts"] == bt["backtest"]["n_forecasts"] > 0
    for signal in ("model", "momentum", "reversal"):
        assert metrics[signal]["ic"][metrics["headline_label"]]["days"] > 0
        assert "annualized_return" in metrics[signal]["portfolio"]["excess_return_with_cost"]


def test_export_round_trip_forecasts(make_cfg) -> None:
    """train -> export -> KronosPredictor from the exported directories -> forecast."""
    out = train(make_cfg("stage=all", "stage.run=[tokenizer,predictor]"))
    tokenizer = KronosTokenizer.from_pretrained(out["tokenizer"])
    model = Kronos.from_pretrained(out["predictor"])
    # the export is the best model by validation loss
    info = _info(Path(out["predictor"]))
    assert info["best_validation"]["metric"] == "val/loss"
    assert np.isfinite(info["best_validation"]["value"])

    rng = np.random.default_rng(0)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    ts = pd.Series(pd.date_range("2024-01-01", periods=88, freq="D"))
    df = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close})
    pred = KronosPredictor(model, tokenizer, device="cpu", max_context=64).predict(
        df, ts[:80], ts[80:], pred_len=8, T=1.0, top_k=1, sample_count=1, verbose=False
    )
    assert list(pred.index) == list(ts[80:])
    assert np.isfinite(pred[["open", "high", "low", "close"]].to_numpy()).all()


def test_finetune_from_published_format_checkpoints(make_cfg, tiny_pair: tuple[Path, Path]) -> None:
    """A published-format pair fine-tunes through `pretrained`, shapes kept."""
    pretrained = dict(zip(("tokenizer", "predictor"), tiny_pair))
    out = train(
        make_cfg(
            "stage=all", "stage.run=[tokenizer,predictor]",
            f"model.tokenizer.pretrained={pretrained['tokenizer']}",
            f"model.predictor.pretrained={pretrained['predictor']}",
        )
    )
    for kind in ("tokenizer", "predictor"):
        exported = Path(out[kind])
        fixture_cfg = json.loads((pretrained[kind] / "config.json").read_text())
        assert json.loads((exported / "config.json").read_text()) == fixture_cfg
        before = load_file(str(pretrained[kind] / "model.safetensors"))
        after = load_file(str(exported / "model.safetensors"))
        assert before.keys() == after.keys()
        changed = [k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])]
        assert changed, f"fine-tuning left every {kind} weight unchanged"


def test_resume_continues_step_count(make_cfg) -> None:
    first = train(make_cfg("stage=tokenizer", "trainer.max_epochs=1"))
    steps_first = _info(Path(first["tokenizer"]))["global_step"]
    assert steps_first == 3
    resumed = train(make_cfg("stage=tokenizer", "trainer.max_epochs=2", "ckpt_path=last"))
    info = _info(Path(resumed["tokenizer"]))
    assert info["global_step"] == 2 * steps_first
    KronosTokenizer.from_pretrained(resumed["tokenizer"])


def test_mismatched_bits_are_refused(make_cfg) -> None:
    train(make_cfg("stage=tokenizer", "trainer.fast_dev_run=true"))
    with pytest.raises(ValueError, match="bits"):
        train(make_cfg("stage=predictor", "trainer.fast_dev_run=true", "model.predictor.config.s1_bits=4",
                       "model.predictor.config.s2_bits=4"))


def test_rerunning_a_stage_keeps_the_earlier_runs_csv_log(make_cfg) -> None:
    """Lightning's CSVLogger deletes metrics.csv in its directory: each run must log into its own."""
    import time

    first = train(make_cfg("stage=tokenizer", "trainer.max_steps=2"))
    logs = Path(first["run_dir"]) / "logs" / "csv"
    (before,) = list(logs.glob("tokenizer-*/metrics.csv"))
    content = before.read_text()
    time.sleep(1.1)  # the directory name carries the start second
    train(make_cfg("stage=tokenizer", "trainer.max_steps=2"))
    assert before.read_text() == content and len(list(logs.glob("tokenizer-*/metrics.csv"))) == 2
