"""A few weeks of CSI300 (the shared Qlib provider) through run_evaluate with a tiny random pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from kronos.data.datamodule import KronosDataModule
from kronos.data.qlib_source import QlibSource
from kronos.evaluate import EvaluateSettings, ModelForecaster, run_evaluate
from kronos.inference.predictor import KronosPredictor
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

pytestmark = pytest.mark.realdata
REPO = Path(__file__).resolve().parents[2]


def test_csi300_evaluate_groups_sh_and_sz(data_dir: Path, tmp_path: Path) -> None:
    source = QlibSource(provider_uri=data_dir / "qlib_cn_csi300", market="csi300", start="2025-12-01", end="2026-02-27")
    datamodule = KronosDataModule(source, lookback=20, horizon=3, batch_size=64,
                                  splits={"train": ["2025-12-01", "2026-01-31"], "test": ["2026-02-01", "2026-02-27"]})
    sizes = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "tiny.yaml"))
    tok_cfg = sizes["tokenizer"]["config"]
    pred_cfg = sizes["predictor"]["config"] | {"s1_bits": tok_cfg["s1_bits"], "s2_bits": tok_cfg["s2_bits"]}
    torch.manual_seed(0)
    predictor = KronosPredictor(Kronos(**pred_cfg).eval(), KronosTokenizer(**tok_cfg).eval(), device="cpu", max_context=64)
    cfg = OmegaConf.load(REPO / "conf" / "evaluate" / "default.yaml")
    seeds = {task: {"seed": 0} for task in ("price", "return", "volatility", "generation")}
    # The task suite on CSI300 is measured by scripts/bench_tasks.py; here the accuracy task alone.
    cfg.merge_with({"stride": 5, "sampling": {"sample_count": 2, "seed": 0}, "batch_size": 512,
                    "task_sampling": seeds, "tasks": []})
    out = tmp_path / "evaluate"
    run_evaluate([ModelForecaster("kronos", predictor, data_end="2024-06-30")], datamodule,
                 EvaluateSettings.from_config(cfg), out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 200 * metrics["dates"] <= metrics["origins"] <= 300 * metrics["dates"]   # point-in-time members
    assert set(metrics["groups"]) == {"SH", "SZ"}
    assert sum(g["origins"] for g in metrics["groups"].values()) == metrics["origins"]
    assert metrics["warnings"] == []            # evaluated well after the stated cutoff
    # Daily CSI300 closes move: the naive forecast errs, and MASE is on the scale of one day's move.
    assert 0.5 < metrics["models"]["naive"]["mase"] < 5.0
