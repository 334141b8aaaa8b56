"""``python -m kronos.train stage=evaluate`` end to end on a tiny synthetic market and a tiny pair."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kronos.experiment import WeightsNotFoundError
from kronos.train import train

FORECASTERS = ("kronos", "naive", "drift", "hist_vol")


def test_evaluate_stage_writes_the_contract(evaluate_cfg, tiny_pair, tmp_path: Path) -> None:
    tok, pred = tiny_pair
    cfg = evaluate_cfg(f"weights.tokenizer={tok}", f"weights.predictor={pred}",
                       f"evaluate.models=[{{name: zero_shot, tokenizer: '{tok}', predictor: '{pred}', "
                       f"data_end: '2100-01-01'}}]")
    result = train(cfg)
    out = tmp_path / "outputs" / "t" / "evaluate"
    metrics = json.loads((out / "metrics.json").read_text())
    assert result["evaluate"]["origins"] == metrics["origins"] > 0
    assert set(metrics["models"]) == {*FORECASTERS, "zero_shot"}
    for name, row in metrics["models"].items():
        for key in ("mae", "mase", "crps", "direction_accuracy", "coverage"):
            assert key in row, (name, key)
        assert set(row["coverage"]) == {"0.5", "0.8", "0.9"}
        assert row["mae"] > 0 and row["mase"] > 0 and row["crps"] > 0
        assert len(row["per_horizon"]["mase"]) == 4
    for name in ("kronos", "hist_vol", "zero_shot"):
        assert all(0.0 <= v <= 1.0 for v in metrics["models"][name]["coverage"].values())
        assert metrics["models"][name]["samples"] == 4
    assert metrics["models"]["naive"]["direction_accuracy"] is None      # naive has no direction
    assert metrics["models"]["naive"]["relative_mase"] == pytest.approx(1.0)
    assert metrics["weights"] == {"tokenizer": {"location": str(tok), "origin": "override"},
                                  "predictor": {"location": str(pred), "origin": "override"}}
    # The same seeded pair under two names samples the same paths: identical scores.
    assert metrics["models"]["zero_shot"]["crps"] == pytest.approx(metrics["models"]["kronos"]["crps"])
    # Training data ending after the evaluated period is flagged for that model only.
    assert len(metrics["warnings"]) == 1 and metrics["warnings"][0].startswith("zero_shot:")
    # Every forecaster was scored on exactly the same origins.
    rows = pd.read_csv(out / "origins.csv")
    keys = {name: set(zip(g["datetime"], g["instrument"])) for name, g in rows.groupby("model")}
    assert len(keys) == 5 and all(k == keys["kronos"] for k in keys.values())
    assert len(rows) == 5 * metrics["origins"]
    # stride=2: every other decision date of the test split.
    dates = sorted(set(rows["datetime"]))
    assert metrics["dates"] == len(dates) and metrics["series"] == 4
    for name in ("report.html", "error_by_horizon.png", "coverage.png", "pit.png"):
        assert (out / name).is_file(), name
    assert "zero_shot" in (out / "report.html").read_text()
    # The paper's tasks on the same origins and pairs, with the metric names other tools read.
    names = {
        "price": ("ic", "rank_ic", "rank_ic_t"), "return": ("ic", "rank_ic", "rank_ic_t"),
        "volatility": ("mae", "r2", "qlike", "mz_alpha", "mz_beta", "mz_p"),
        "generation": ("discriminative_score", "discriminative_accuracy_gap", "predictive_rank_ic"),
    }
    baselines = {"volatility": {"hist_vol", "ewma", "garch"}, "generation": {"bootstrap", "garch_sim", "random_walk"}}
    assert set(metrics["task_suite"]["run"]) == set(names) and metrics["task_suite"]["skipped"] == {}
    for task, keys in names.items():
        block = metrics["tasks"][task]
        assert {"kronos", "zero_shot"} <= set(block["models"]) and block["verdict"].startswith("kronos ")
        assert baselines.get(task, set()) <= set(block["models"])
        for key in keys:
            assert key in block["models"]["kronos"], (task, key)
    assert metrics["tasks"]["price"]["sampling"] == {"T": 0.6, "top_k": 0, "top_p": 0.9, "sample_count": 10,
                                                     "seed": 42, "spread": 1.0}
    facts = metrics["tasks"]["generation"]["models"]["kronos"]["stylized_facts"]
    assert {"real", "generated"} <= set(facts["return_kurtosis"])
    assert metrics["tasks"]["accuracy"]["verdict"].startswith("CRPS: kronos ")
    # Price and return share one forecast pass (same sampling); volatility and generation each have their own.
    assert len(metrics["task_suite"]["forecast_passes"]) == 3
    for name in ("volatility_scatter.png", "stylized_facts.png", "generated_windows.png", "volatility_origins.csv"):
        assert (out / name).is_file(), name


def test_evaluate_without_any_pair_is_a_clear_error(evaluate_cfg) -> None:
    with pytest.raises(WeightsNotFoundError, match="stage=tokenizer name=t"):
        train(evaluate_cfg())


def test_evaluate_models_alone_when_the_experiment_has_no_export(evaluate_cfg, tiny_pair, tmp_path: Path) -> None:
    tok, pred = tiny_pair
    cfg = evaluate_cfg(f"evaluate.models=[{{name: other, tokenizer: '{tok}', predictor: '{pred}'}}]",
                       "evaluate.baselines=[naive]")
    metrics = train(cfg)["evaluate"]
    assert set(metrics["models"]) == {"other", "naive"}
    assert metrics["weights"] == {"tokenizer": None, "predictor": None}
    assert metrics["warnings"] == []


def test_cli_without_weights_exits_with_one_message(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "kronos.train", "stage=evaluate", "name=nothing", f"output_root={tmp_path}",
         "data.source.n_instruments=2", "data.source.n_steps=120", "data.lookback=16", "data.horizon=2"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: no tokenizer for experiment 'nothing'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_predictor_paired_with_another_tokenizer_is_flagged(evaluate_cfg, tiny_pair, tmp_path: Path) -> None:
    """evaluate.models pairs a predictor with a tokenizer it was not trained on: metrics.json says so."""
    import shutil

    tok, pred = tiny_pair
    other_tok = tmp_path / "other_tokenizer"
    shutil.copytree(tok, other_tok)
    trained = tmp_path / "predictor_trained_on_other"
    shutil.copytree(pred, trained)
    (trained / "training_info.json").write_text(json.dumps({"tokenizer_source": {"location": str(other_tok),
                                                                                 "origin": "export"}}))
    cfg = evaluate_cfg(f"evaluate.models=[{{name: mismatched, tokenizer: '{tok}', predictor: '{trained}'}},"
                       f"{{name: matched, tokenizer: '{other_tok}', predictor: '{trained}'}}]",
                       "evaluate.baselines=[naive]")
    warnings = train(cfg)["evaluate"]["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("mismatched:") and str(other_tok) in warnings[0]
