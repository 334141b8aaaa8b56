"""A few days of CSI300 through the whole backtest: the shared Qlib provider, a tiny random-weight
Kronos, and Qlib's engine against SH000300."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from kronos.backtest import run_backtest
from kronos.backtest.settings import BacktestSettings
from kronos.data.datamodule import KronosDataModule
from kronos.data.qlib_source import QlibSource
from kronos.inference.predictor import KronosPredictor
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer

pytestmark = [pytest.mark.realdata, pytest.mark.slow]  # ~35 s: loads the CSI300 panel
REPO = Path(__file__).resolve().parents[2]


def tiny_predictor() -> KronosPredictor:
    """conf/model/tiny.yaml's sizes with random weights (seeded)."""
    sizes = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "tiny.yaml"), resolve=False)
    tok_cfg = sizes["tokenizer"]["config"]
    pred_cfg = sizes["predictor"]["config"] | {"s1_bits": tok_cfg["s1_bits"], "s2_bits": tok_cfg["s2_bits"]}
    torch.manual_seed(0)
    return KronosPredictor(Kronos(**pred_cfg).eval(), KronosTokenizer(**tok_cfg).eval(), device="cpu", max_context=64)


def test_csi300_backtest_report_names_sh000300(data_dir: Path, tmp_path: Path) -> None:
    source = QlibSource(provider_uri=data_dir / "qlib_cn_csi300", market="csi300", start="2025-12-01", end="2026-02-27")
    datamodule = KronosDataModule(source, lookback=20, horizon=2, batch_size=64,
                                  splits={"train": ["2025-12-01", "2026-01-31"], "test": ["2026-02-01", "2026-02-27"]})
    cfg = OmegaConf.load(REPO / "conf" / "backtest" / "topk_dropout.yaml")
    cfg.merge_with({"sampling": {"sample_count": 1}, "batch_size": 512, "start": "2026-02-02", "end": "2026-02-06",
                    "benchmark": "SH000300", "simulate": ["model", "momentum", "reversal"]})
    out = tmp_path / "csi300" / "backtest"
    result = run_backtest(tiny_predictor(), datamodule, BacktestSettings.from_config(cfg), out)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == "SH000300"
    assert "SH000300" in (out / "report.html").read_text()
    assert metrics["provider_uri"] == str(data_dir / "qlib_cn_csi300")
    assert 200 <= metrics["n_instruments"] <= 300   # point-in-time CSI300 members
    assert metrics["start"] == "2026-02-02" and metrics["end"] <= "2026-02-06"
    for name in ("model", "momentum", "reversal"):
        pf = metrics[name]["portfolio"]
        assert pf["days"] >= 3 and 0 < pf["turnover"] <= 1.0
        # a 5-day backtest: too few days for annualised figures, null with the reason (kronos.backtest.guards)
        assert pf["excess_return_with_cost"]["annualized_return"] is None
        assert "decision day(s)" in " ".join(str(v) for v in metrics[name]["unavailable"].values())
        assert metrics[name]["ic"]["trade_return"]["days"] >= 3
    assert result["model"]["portfolio"]["benchmark"] == result["reversal"]["portfolio"]["benchmark"]
    # China A-shares from a Qlib cn provider: cn rules, point-in-time membership (no survivorship warning),
    # and the price-index caveat for SH000300.
    assert metrics["region"] == "cn" and metrics["membership"] is True
    assert not any("survivorship" in w for w in metrics["warnings"])
    assert any("SH000300 is treated as a price index" in n for n in metrics["notes"])
    assert metrics["bad_prices"]["count"] >= 0 and "examples" in metrics["bad_prices"]
    # Board- and date-aware limits at work: counts of labels masked and buys blocked at limit-up.
    assert metrics["limit_up"]["labels_masked"] >= 0
    assert set(metrics["limit_up"]["buys_blocked"]) >= {"model", "momentum", "reversal"}
    assert metrics["bars_per_year"] == pytest.approx(242, abs=8)  # the CSI300 calendar's own trading days
