"""run_backtest end to end on synthetic data (fake predictor), the report files and the logger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from kronos.backtest import run_backtest
from kronos.backtest.report import FIGURES
from tests.backtest.conftest import DriftFake

REPO = Path(__file__).resolve().parents[2]


def _cfg(**overrides):
    cfg = OmegaConf.load(REPO / "conf" / "backtest" / "topk_dropout.yaml")
    root = OmegaConf.create({"seed": 7, "data": {"benchmark": None}, "backtest": cfg})
    root.backtest.merge_with({"topk": 4, "n_drop": 1, "sample_count": 2, "batch_size": 128, "anchor": "last_close",
                              **overrides})
    return root.backtest


class FakeExperiment:
    def __init__(self) -> None:
        self.images: dict[str, tuple[int, ...]] = {}

    def add_image(self, tag, image, dataformats="CHW") -> None:
        assert dataformats == "HWC"
        self.images[tag] = image.shape


class FakeLogger:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.experiment = FakeExperiment()

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.update(metrics)


@pytest.fixture(scope="module")
def report(datamodule, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "backtest"
    logger = FakeLogger()
    result = run_backtest(DriftFake(), datamodule, _cfg(), out, logger=logger)
    return out, result, logger


def test_report_files_and_metrics(report, datamodule) -> None:
    out, result, _ = report
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metrics.json", "signals.csv", "report.html"] + [f"{f}.png" for f in FIGURES])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == "equal-weighted universe"
    assert metrics["n_forecasts"] == len(datamodule.dataset("test", with_eval=True))
    for name in ("model", "baseline"):
        assert set(metrics[name]["ic"]) == {"next_return", "horizon_return"}
        pf = metrics[name]["portfolio"]
        for key in ("return_without_cost", "return_with_cost", "excess_return_without_cost", "excess_return_with_cost"):
            assert {"annualized_return", "information_ratio", "max_drawdown"} <= set(pf[key])
        assert pf["turnover"] > 0
        # Costs only ever lower the excess return.
        assert pf["excess_return_with_cost"]["annualized_return"] < pf["excess_return_without_cost"]["annualized_return"]
    assert metrics["settings"]["seed"] == 7 and metrics["settings"]["horizon"] == 3
    assert result["figures"]["daily_rank_ic"] == str(out / "daily_rank_ic.png")


def test_signals_csv_and_html(report) -> None:
    out, result, _ = report
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])
    assert {"datetime", "instrument", "model", "baseline", "next_return", "horizon_return", "pred_close_1"} <= set(signals)
    preds = signals.filter(like="pred_close_").to_numpy()
    # Predicted closes are float32 (the feature helpers' dtype): returns agree to ~1e-7 absolute.
    np.testing.assert_allclose(signals["model"], (preds / signals[["last_close"]].to_numpy() - 1).mean(axis=1),
                               rtol=0, atol=5e-7)
    assert signals["model"].std() > 1e-3
    np.testing.assert_allclose(signals["baseline"], signals["past_return"], rtol=1e-6)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "equal-weighted universe" in html and "RankIC" in html
    for figure in FIGURES:
        assert (out / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logger_gets_headline_numbers_and_plots(report) -> None:
    _, result, logger = report
    assert np.isfinite(list(logger.metrics.values())).all()
    assert logger.metrics["backtest/model_rank_ic"] == pytest.approx(result["model"]["ic"]["next_return"]["rank_ic"])
    assert logger.metrics["backtest/baseline_excess_return_with_cost"] == pytest.approx(
        result["baseline"]["portfolio"]["excess_return_with_cost"]["annualized_return"])
    assert set(logger.experiment.images) == {f"backtest/{f}" for f in FIGURES}
    assert all(shape[2] == 3 for shape in logger.experiment.images.values())


def test_crash_keeps_the_previous_report(report, datamodule, monkeypatch) -> None:
    out, _, _ = report
    before = (out / "metrics.json").read_text()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("kronos.backtest.report._html", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        run_backtest(DriftFake(), datamodule, _cfg(topk=3), out)
    assert (out / "metrics.json").read_text() == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_config_keys_and_benchmark_interpolation() -> None:
    cfg = OmegaConf.load(REPO / "conf" / "backtest" / "topk_dropout.yaml")
    root = OmegaConf.create({"seed": 1, "data": {"benchmark": "SH000300"}, "backtest": cfg})
    resolved = OmegaConf.to_container(root.backtest, resolve=True)
    assert resolved["benchmark"] == "SH000300"
    expected = {"topk": 50, "n_drop": 5, "hold_thresh": 1, "signal": "mean", "baseline": "persistence",
                "sample_count": 5, "T": 0.6, "top_k": 0, "top_p": 0.9, "batch_size": 256, "max_context": 512,
                "account": 100000000, "limit_threshold": 0.095, "deal_price": "close", "start": None, "end": None,
                "provider_uri": None, "costs": {"open_cost": 0.0005, "close_cost": 0.0015, "min_cost": 5}}
    assert {k: resolved[k] for k in expected} == expected


def test_intraday_data_reports_ic_without_portfolio(tmp_path) -> None:
    """Hourly bars cannot go through Qlib's daily exchange: IC is reported, the portfolio is skipped."""
    from kronos.data.datamodule import KronosDataModule
    from kronos.data.synthetic import SyntheticSource

    dm = KronosDataModule(source=SyntheticSource(n_instruments=6, n_steps=240, seed=3, freq="h"),
                          lookback=24, horizon=4, batch_size=32, splits={"train": 0.6, "val": 0.1, "test": 0.3})
    dm.setup("fit")
    out = tmp_path / "exp" / "backtest"
    result = run_backtest(DriftFake(), dm, _cfg(topk=2), out)
    assert result["model"]["portfolio"] is None and "intraday" in result["portfolio_skipped"]
    assert np.isfinite(result["model"]["ic"]["next_return"]["rank_ic"])
    assert sorted(p.name for p in out.iterdir()) == ["daily_rank_ic.png", "metrics.json", "report.html", "signals.csv"]
    assert not (tmp_path / "exp" / "qlib_provider").exists()
    assert "Not run: intraday" in (out / "report.html").read_text()
