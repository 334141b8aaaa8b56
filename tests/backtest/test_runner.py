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
from kronos.backtest.settings import BacktestSettings, BacktestSettingsError
from kronos.inference.candles import REPAIR_FIELDS
from kronos.inference.settings import SAMPLING_KEYS
from tests.backtest.conftest import DriftFake, make_datamodule

REPO = Path(__file__).resolve().parents[2]
SIGNALS = ("model", "model_mean", "model_sharpe", "model_prob_up", "momentum", "reversal", "volume", "low_vol",
           "oracle")
FAST = {"baselines": ["momentum", "reversal"]}  # fewer portfolios where a test is about something else
LABELS = ("trade_return", "next_return", "horizon_return")


def _cfg(**overrides) -> BacktestSettings:
    """The YAML's settings with small, fast overrides (as the stage builds them)."""
    cfg = OmegaConf.load(REPO / "conf" / "backtest" / "topk_dropout.yaml")
    sampling = {"sample_count": 2, "seed": 7, **{k: overrides.pop(k) for k in list(overrides) if k in SAMPLING_KEYS}}
    cfg.merge_with({"topk": 4, "n_drop": 1, "batch_size": 128, "sampling": sampling, **overrides})
    return BacktestSettings.from_config(cfg)


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
    result = run_backtest(DriftFake(), datamodule, _cfg(simulate=["all"]), out, logger=logger)
    return out, result, logger


def test_report_files_and_metrics(report, datamodule) -> None:
    out, result, _ = report
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metrics.json", "signals.csv", "report.html"] + [f"{f}.png" for f in FIGURES])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["benchmark"] == "equal-weighted universe"
    assert metrics["n_forecasts"] == len(datamodule.eval_dataloader("test").dataset)
    # every candle of every path counted (2 paths x H steps per window); signals.csv holds the per-window counts
    repairs = metrics["candle_repairs"]
    assert repairs["candles"] == metrics["n_forecasts"] * 2 * datamodule.horizon
    signals = pd.read_csv(out / "signals.csv")
    assert {k: int(signals[f"repairs_{k}"].sum()) for k in REPAIR_FIELDS} == {k: repairs[k] for k in REPAIR_FIELDS}
    # The contract other tools read.
    assert metrics["headline_label"] == "trade_return" and metrics["settings"]["anchor"] == "last_close"
    assert metrics["baselines"] == ["momentum", "reversal", "volume", "low_vol"]
    assert metrics["signal"] == "trade" and metrics["model_signals"] == list(SIGNALS[:4])
    assert metrics["capture_ratio"] == pytest.approx(
        metrics["model"]["ic"]["trade_return"]["rank_ic"] / metrics["oracle"]["ic"]["trade_return"]["rank_ic"])
    assert metrics["bars_per_year"] == pytest.approx(261, abs=2)  # business days, measured from the calendar
    assert metrics["weights"] == {"tokenizer": None, "predictor": None}
    for name in SIGNALS:
        assert set(metrics[name]["ic"]) == set(LABELS)
        for label in LABELS:
            assert {"ic", "rank_ic", "icir", "rank_icir", "rank_ic_t", "days"} <= set(metrics[name]["ic"][label])
            assert metrics[name]["ic"][label]["days"] > 20
        pf = metrics[name]["portfolio"]
        for key in ("return_without_cost", "return_with_cost", "excess_return_without_cost", "excess_return_with_cost"):
            assert {"annualized_return", "information_ratio", "max_drawdown"} <= set(pf[key])
        assert pf["turnover"] > 0
        # Costs only ever lower the excess return.
        assert pf["excess_return_with_cost"]["annualized_return"] < pf["excess_return_without_cost"]["annualized_return"]
        factor = metrics[name]["factor"]
        assert len(factor["quantile_returns"]) == 5 and set(factor["spread"]) == {"mean", "t", "p"}
        if name == "model_prob_up":  # 2 paths: 3 values a day at most, ties for 5 groups (kronos.backtest.guards)
            assert "fewer than backtest.quantiles=5" in metrics[name]["unavailable"]["factor"]
            assert factor["monotonicity"] is None and pf["long_short"]["t"] is None
            continue
        assert -1 <= factor["monotonicity"] <= 1 and len(factor["ic_decay"]) == 3
        assert set(pf["alpha"]) == set(pf["alpha_after_cost"]) == {"annualized", "t", "p", "beta"}
        assert pf["alpha_after_cost"]["annualized"] < pf["alpha"]["annualized"]
        assert {"annualized_return", "information_ratio", "t"} <= set(pf["long_short"])
        assert pf["long_short"]["annualized_return"] < pf["long_short"]["before_cost"]["annualized_return"]
        assert np.isfinite(pf["break_even_cost_bps"])
        assert list(pf["excess_return_by_cost_bps"]) == ["0", "5", "10", "20", "50"]
    # The planted drift, known on synthetic data, ranks and earns.
    oracle = metrics["oracle"]
    assert oracle["ic"]["trade_return"]["rank_ic_t"] > 2 and oracle["factor"]["spread"]["t"] > 2
    assert oracle["portfolio"]["long_short"]["annualized_return"] > 0
    stats = metrics["statistics"]
    assert stats["rank_ic_ci"][0] < metrics["model"]["ic"]["trade_return"]["rank_ic"] < stats["rank_ic_ci"][1]
    assert 0 < stats["rank_ic_permutation_p"] <= 1
    assert metrics["headline"][0].startswith("Headline signal: trade") and metrics["verdict"] in metrics["headline"]
    assert metrics["settings"]["sampling"]["seed"] == 7 and metrics["settings"]["horizon"] == 3
    # Synthetic data: no membership, so the survivorship warning; no limits outside cn.
    assert any("survivorship" in w for w in metrics["warnings"]) and metrics["region"] == "none"
    assert metrics["significance"]["momentum"]["verdict"].startswith("model ")
    # The old name 'persistence' is gone: no duplicate row, no note.
    assert "persistence" not in metrics and "persistence" not in metrics["significance"]
    assert not any("persistence" in n for n in metrics["notes"])
    assert result["figures"]["daily_rank_ic"] == str(out / "daily_rank_ic.png")


def test_signals_csv_and_html(report) -> None:
    out, result, _ = report
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])
    assert list(signals.columns[:14]) == ["datetime", "instrument", *SIGNALS, *LABELS]
    assert not signals.duplicated(["datetime", "instrument"]).any()
    preds = signals.filter(like="pred_close_").to_numpy()
    # Predicted closes are float32 (the feature helpers' dtype): returns agree to ~1e-7 absolute.
    np.testing.assert_allclose(signals["model_mean"], (preds / signals[["last_close"]].to_numpy() - 1).mean(axis=1),
                               rtol=0, atol=5e-7)
    assert signals["model_mean"].std() > 1e-3 and signals["model"].std() > 1e-3
    np.testing.assert_allclose(signals["momentum"], signals["past_return"], rtol=1e-6)
    np.testing.assert_allclose(signals["model"], signals["trade_mean"], rtol=1e-6)  # the headline: trade
    np.testing.assert_allclose(signals["reversal"], -signals["past_return"], rtol=1e-6)
    # The last decision dates' futures lie beyond the data: their labels are missing, not invented.
    last = signals[signals["datetime"] == signals["datetime"].max()]
    assert last["trade_return"].isna().all() and last["next_return"].isna().all()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(FIGURES)
    assert "equal-weighted universe" in html and "RankIC t" in html and "survivorship" in html
    # The first lines: the headline numbers beside the best baseline and the oracle.
    first = html[html.index("<body>"):][:3000]
    assert "RankIC (t)" in first and "best baseline" in first and "oracle" in first and "break-even" in first
    assert "is not significantly different from" in html or "beats" in html or "loses to" in html
    for figure in FIGURES:
        assert (out / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logger_gets_headline_numbers_and_plots(report) -> None:
    _, result, logger = report
    assert np.isfinite(list(logger.metrics.values())).all()
    assert logger.metrics["backtest/model_rank_ic"] == pytest.approx(result["model"]["ic"]["trade_return"]["rank_ic"])
    assert logger.metrics["backtest/reversal_excess_return_with_cost"] == pytest.approx(
        result["reversal"]["portfolio"]["excess_return_with_cost"]["annualized_return"])
    assert logger.metrics["backtest/model_spread_t"] == pytest.approx(result["model"]["factor"]["spread"]["t"])
    assert logger.metrics["backtest/model_mean_alpha"] == pytest.approx(result["model_mean"]["portfolio"]["alpha"]["annualized"])
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


def test_intraday_data_reports_ic_without_portfolio(tmp_path) -> None:
    """Hourly bars cannot go through Qlib's daily exchange: IC is reported, the portfolio is skipped.

    Regression: with a logger attached, the headline numbers indexed the skipped portfolio and crashed
    (after metrics.json was written) -- exit 1 on a folder of 5-minute crypto files."""
    from kronos.data.datamodule import KronosDataModule
    from kronos.data.synthetic import SyntheticSource

    dm = KronosDataModule(source=SyntheticSource(n_instruments=6, n_steps=240, seed=3, freq="h"),
                          lookback=24, horizon=4, batch_size=32, splits={"train": 0.6, "val": 0.1, "test": 0.3})
    dm.setup("fit")
    out = tmp_path / "exp" / "backtest"
    logger = FakeLogger()
    result = run_backtest(DriftFake(), dm, _cfg(topk=2, **FAST), out, logger=logger)
    assert result["model"]["portfolio"] is None and "intraday" in result["portfolio_skipped"]
    assert any("No portfolio: intraday" in w for w in result["warnings"])  # in metrics.json, not only the log
    assert np.isfinite(result["model"]["ic"]["trade_return"]["rank_ic"])
    assert logger.metrics["backtest/model_rank_ic_t"] == pytest.approx(result["model"]["ic"]["trade_return"]["rank_ic_t"])
    assert not any(k.endswith("_turnover") for k in logger.metrics)
    assert sorted(p.name for p in out.iterdir()) == ["cumulative_spread.png", "daily_rank_ic.png", "metrics.json",
                                                     "quantile_returns.png", "report.html", "signals.csv"]
    assert result["model"]["factor"]["days"] > 0 and np.isfinite(result["model"]["long_short"]["t"])
    assert not (tmp_path / "exp" / "qlib_provider").exists()
    assert "Not run: intraday" in (out / "report.html").read_text()


def test_split_val_scores_the_validation_decisions_only(tmp_path) -> None:
    """backtest.split=val forecasts and scores the validation split's decisions, none of the test split's."""
    from kronos.data.datamodule import KronosDataModule
    from kronos.data.synthetic import SyntheticSource

    dm = KronosDataModule(source=SyntheticSource(n_instruments=6, n_steps=240, seed=3, freq="h"),
                          lookback=24, horizon=4, batch_size=32, splits={"train": 0.6, "val": 0.1, "test": 0.3})
    dm.setup("fit")
    out = tmp_path / "exp" / "backtest"
    result = run_backtest(DriftFake(), dm, _cfg(topk=2, split="val", **FAST), out)
    dates = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])["datetime"]
    val_start, val_end = (pd.Timestamp(t, unit="ns") for t in dm._split_span("val"))
    assert dates.min() >= val_start and dates.max() <= val_end and result["n_forecasts"] == len(dates)


def test_labels_in_signals_csv_match_the_panel(report, datamodule) -> None:
    """Hand-check a sample of rows: each label from the raw closes of the panel, calendar-aligned."""
    out, _, _ = report
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"]).dropna(subset=["horizon_return"])
    horizon = datamodule.horizon
    for _, row in signals.sample(15, random_state=1).iterrows():
        close = datamodule.panel.frame(row["instrument"])["close"].astype(np.float64)
        at = close.index.get_loc(row["datetime"])
        assert row["next_return"] == pytest.approx(close.iloc[at + 1] / close.iloc[at] - 1, rel=1e-6, abs=1e-9)
        assert row["trade_return"] == pytest.approx(close.iloc[at + 2] / close.iloc[at + 1] - 1, rel=1e-6, abs=1e-9)
        assert row["horizon_return"] == pytest.approx(close.iloc[at + horizon] / close.iloc[at] - 1, rel=1e-6, abs=1e-9)


def test_reconstructed_anchor_reports_the_gap_and_the_model_net_of_it(tmp_path, tiny_pair) -> None:
    """anchor=reconstructed: the report adds the anchor gap alone and the model with the gap regressed out."""
    from kronos.inference.loading import load_predictor
    from kronos.stats import daily_ic

    dm = make_datamodule(n_instruments=8, n_steps=120)
    predictor = load_predictor(str(tiny_pair[0]), str(tiny_pair[1]), device="cpu", max_context=64)
    out = tmp_path / "exp" / "backtest"
    result = run_backtest(predictor, dm, _cfg(topk=3, sample_count=1, anchor="reconstructed", **FAST), out)
    assert result["settings"]["anchor"] == "reconstructed"
    assert {"anchor_gap", "model_ex_gap"} <= set(result) and any("anchor_gap" in w for w in result["warnings"])
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])
    gap = -(signals["anchor_close"] - signals["last_close"]) / signals["last_close"]
    np.testing.assert_allclose(signals["anchor_gap"], gap, rtol=1e-6, atol=1e-9)
    # The residual is uncorrelated with the gap on every day (it was regressed out).
    ic = daily_ic(signals.assign(gap=gap), "model_ex_gap", "gap", method="pearson")
    assert np.abs(ic).max() < 1e-6
    assert "model_ex_gap" in (out / "report.html").read_text()


def test_topk_larger_than_the_universe_is_capped_with_a_note(tmp_path) -> None:
    dm = make_datamodule(n_instruments=6, n_steps=120)
    result = run_backtest(DriftFake(), dm, _cfg(topk=50, n_drop=5, sample_count=1, **FAST), tmp_path / "e" / "backtest")
    # n_drop scales with topk: round(5 * 3 / 50) = 0, at least 1 (10 % of the book configured, not 100 %).
    assert result["settings"]["topk_used"] == 3 and result["settings"]["n_drop_used"] == 1
    assert any("backtest.topk=50" in n and "n_drop=1" in n for n in result["notes"])


@pytest.mark.parametrize(("topk", "n_drop", "universe", "expected"), [
    (50, 5, 24, (12, 1)),   # the main job: 5/50 = 10 % of the book a day stays ~10 % (1/12), not 42 % (5/12)
    (50, 5, 6, (3, 1)),     # round(0.3) = 0, but at least one name is swapped
    (10, 5, 8, (4, 2)),     # half the book configured, half kept
    (20, 6, 20, (10, 3)),
    (50, 0, 24, (12, 0)),   # never swapping stays never swapping
    (4, 1, 24, (4, 1)),     # smaller than the universe: unchanged
])
def test_a_capped_topk_scales_n_drop(topk: int, n_drop: int, universe: int, expected: tuple[int, int]) -> None:
    from kronos.backtest.runner import cap_portfolio

    new_topk, new_drop, note = cap_portfolio(topk, n_drop, universe)
    assert (new_topk, new_drop) == expected
    assert (note is None) == (topk < universe)


def _refuse(name: str) -> None:
    raise ValueError(f"metrics.json holds {name}: not JSON")


def test_metrics_json_is_strict_and_no_verdict_outruns_its_test(report) -> None:
    """metrics.json parses with NaN refused; every "beats"/"loses to" has p < 0.05 and |t| >= 1.96, every other
    sentence says "is not significantly different from" or "cannot judge"."""
    out, _, _ = report
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=_refuse)
    assert metrics["annualisation"].startswith("summed")
    for name in metrics["baselines"]:
        entry = metrics["significance"][name]
        assert [c["metric"].split(" ")[0] for c in entry["comparisons"]] == ["mean", "long-short", "top-k"]
        for c in entry["comparisons"]:
            if c["outcome"] in ("beats", "loses to"):
                assert c["p"] < 0.05 and abs(c["t"]) >= 1.96, c
                assert (c["t"] > 0) == (c["outcome"] == "beats"), c
            else:
                assert c["p"] is None or c["p"] >= 0.05 or c["outcome"] == "cannot judge", c
            assert c["sentence"] in entry["verdict"] and c["outcome"] in c["sentence"]
        said = entry["verdict"].count(" beats ") + entry["verdict"].count(" loses to ")
        assert said == sum(c["outcome"] in ("beats", "loses to") for c in entry["comparisons"])


def test_backtest_metrics_json_writes_null_for_nan(tmp_path) -> None:
    """A statistic that cannot be computed is null in metrics.json (it was a bare NaN, which is not JSON)."""
    from kronos.backtest.report import write_report

    metrics = {"name": "x", "benchmark": "b", "signals": {}, "labels": {"trade_return": "t"}, "settings": {},
               "headline_label": "trade_return", "n_forecasts": 0, "n_instruments": 0, "start": "", "end": "",
               "capture_ratio": float("nan"), "model": {"factor": {"quantiles": 2, "quantile_returns": [], "quantile_t": [],
               "spread": {"mean": float("nan"), "t": float("nan")}, "monotonicity": float("nan"), "ic_decay": [],
               "autocorrelation": float("nan"), "turnover": float("nan")}, "ic": {"trade_return": {
                   "ic": float("nan"), "icir": 0.0, "ic_t": 0.0, "rank_ic": 0.0, "rank_icir": 0.0, "rank_ic_t": 0.0,
                   "days": 0}}, "long_short": {"annualized_return": float("inf"), "information_ratio": 0.0, "t": 0.0,
                                               "break_even_cost_bps": 0.0}, "portfolio": None},
               "baselines": [], "model_signals": ["model"]}
    days = pd.bdate_range("2024-01-01", periods=3)
    daily = pd.DataFrame({"ic": [0.1, 0.2, 0.0], "rank_ic": [0.1, 0.2, 0.0]}, index=days)
    write_report(tmp_path / "bt", metrics, pd.DataFrame({"a": [1]}), {}, {"model": daily},
                 factors={"model": pd.DataFrame({1: [0.0] * 3, 2: [0.01] * 3}, index=days)},
                 long_short={"model": pd.Series([0.0, 0.01, 0.0], index=days)})
    parsed = json.loads((tmp_path / "bt" / "metrics.json").read_text(), parse_constant=_refuse)
    assert parsed["capture_ratio"] is None and parsed["model"]["long_short"]["annualized_return"] is None
    assert parsed["model"]["ic"]["trade_return"]["ic"] is None


def test_headline_is_info_and_a_rerun_says_it_replaced_the_report(tmp_path, caplog) -> None:
    """The headline is the stage's result, not a warning; a re-run over an existing report says so in one line."""
    import logging

    out = tmp_path / "e" / "backtest"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    with caplog.at_level(logging.INFO):
        result = run_backtest(DriftFake(), make_datamodule(n_instruments=6, n_steps=120),
                              _cfg(topk=3, sample_count=1, **FAST), out)
    headline = [r for r in caplog.records if "Headline signal" in r.getMessage()]
    assert len(headline) == 1 and headline[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.getMessage().startswith(
        "backtest: " + result["verdict"][:30])]
    replaced = [r.getMessage() for r in caplog.records if "replaced the previous report" in r.getMessage()]
    assert replaced == [f"backtest: replaced the previous report in {out}"]


def test_run_backtest_takes_settings_not_a_config(datamodule, tmp_path) -> None:
    with pytest.raises(TypeError, match="BacktestSettings.from_config"):
        run_backtest(DriftFake(), datamodule, {"topk": 4}, tmp_path / "x" / "backtest")


def test_bad_price_rows_are_flagged_and_optionally_dropped(tmp_path) -> None:
    """A 2:1 split left in unadjusted prices (-50 % in a day) is far beyond a cn main-board limit."""
    from kronos.data.panel import Panel

    from kronos.data.source import SourceBase

    class Fixed(SourceBase):
        def __init__(self, panel):
            self.panel = panel

        def load(self):
            return self.panel

    base = make_datamodule(n_instruments=6, n_steps=120).panel
    values = [v.copy() for v in base.values]
    split_day = 100
    values[0][split_day:, :4] *= 0.5
    panel = Panel(base.instruments, base.timestamps, values)
    from kronos.data.datamodule import KronosDataModule

    dm = KronosDataModule(Fixed(panel), lookback=20, horizon=3, splits={"train": 0.6, "val": 0.1, "test": 0.3},
                          batch_size=16)
    total = len(dm.eval_dataloader("test").dataset)
    result = run_backtest(DriftFake(), dm, _cfg(topk=2, n_drop=1, sample_count=1, region="cn", drop_bad_prices=True,
                                                **FAST),
                          tmp_path / "e" / "backtest")
    bad = result["bad_prices"]
    day = str(pd.Timestamp(panel.timestamps[0][split_day]).date())
    assert bad["count"] >= 1 and bad["by_reason"].get("beyond_limit", 0) >= 1
    assert any(e["instrument"] == "SYN000" and e["datetime"] == day for e in bad["examples"]), bad
    # Decisions on the split day and the two days before it trade through it: dropped.
    assert bad["dropped"] == 3 and result["n_forecasts"] == total - 3
    assert any("price row(s) look wrong" in w for w in result["warnings"])
    assert "Flagged price rows" in (tmp_path / "e" / "backtest" / "report.html").read_text()


def test_neutralised_signals_carry_none_of_the_exposures(tmp_path) -> None:
    from kronos.backtest.exposures import lookback_features
    from kronos.backtest.settings import BacktestSettingsError

    dm = make_datamodule(n_instruments=10, n_steps=120)
    out = tmp_path / "e" / "backtest"
    result = run_backtest(DriftFake(), dm, _cfg(topk=3, sample_count=3, neutralize=["beta", "volatility", "size"],
                                                **FAST), out)
    assert "neutralised per day on beta, volatility, size" in result["signals"]["model"]
    signals = pd.read_csv(out / "signals.csv", parse_dates=["datetime"])
    features = lookback_features(dm.panel, signals)  # synthetic names are already Qlib symbols
    frame = pd.concat([signals[["datetime", "model", "model_mean"]], features], axis=1).dropna()
    for _, day in frame.groupby("datetime"):
        for exposure in ("beta", "volatility", "size"):
            assert abs(day["model"].corr(day[exposure])) < 1e-6 and abs(day["model_mean"].corr(day[exposure])) < 1e-6
    with pytest.raises(BacktestSettingsError, match="industry"):
        run_backtest(DriftFake(), dm, _cfg(neutralize=["industry"]), tmp_path / "f" / "backtest")


def test_a_second_backtest_on_the_store_computes_no_forecast_and_reuses_the_analysis(tmp_path) -> None:
    """With store_dir the forecasts are kept; a topk change reads them back and recomputes only the simulations."""
    dm = make_datamodule(n_instruments=6, n_steps=120)
    weights = {"tokenizer": {"location": "t"}, "predictor": {"location": "p"}}
    first = run_backtest(DriftFake(), dm, _cfg(topk=3, sample_count=1, **FAST), tmp_path / "e" / "backtest",
                         weights=weights, store_dir=tmp_path / "e" / "forecasts")
    signals = pd.read_csv(tmp_path / "e" / "backtest" / "signals.csv")
    store = first["forecast_store"]
    assert store["computed"] == first["n_forecasts"] and store["reused"] == 0
    assert any(f"store {store['key']}" in n for n in first["notes"])
    again = run_backtest(DriftFake(), dm, _cfg(topk=2, sample_count=1, **FAST), tmp_path / "e" / "backtest",
                         weights=weights, store_dir=tmp_path / "e" / "forecasts")
    assert again["forecast_store"]["key"] == store["key"]
    assert again["forecast_store"]["computed"] == 0 and again["forecast_store"]["reused"] == first["n_forecasts"]
    n_signals = len(first["model_signals"]) + len(FAST["baselines"]) + 1  # + oracle
    # IC, factor and long-short of every signal reused; only the headline's simulation (backtest.simulate) rerun
    assert again["forecast_store"]["analysis_results"] == {"reused": 3 * n_signals, "computed": 1}
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "e" / "backtest" / "signals.csv"), signals)
    assert again["model"]["ic"] == first["model"]["ic"] and again["settings"]["topk_used"] == 2
    other = run_backtest(DriftFake(), dm, _cfg(topk=2, sample_count=2, **FAST), tmp_path / "e" / "backtest",
                         weights=weights, store_dir=tmp_path / "e" / "forecasts")
    assert other["forecast_store"]["key"] != store["key"] and other["forecast_store"]["reused"] == 0


def test_simulate_trades_only_the_named_signals_and_figures_are_drawn_once(tmp_path, monkeypatch) -> None:
    """backtest.simulate=[model] (the default) runs one Qlib simulation, says which signals were not simulated, and
    a re-run with another topk redraws only the portfolio figures; simulate=all then adds the others."""
    import kronos.backtest.report as report_module

    dm = make_datamodule(n_instruments=6, n_steps=120)
    kw = dict(weights={"tokenizer": {"location": "t"}, "predictor": {"location": "p"}},
              store_dir=tmp_path / "e" / "forecasts")
    out = tmp_path / "e" / "backtest"
    first = run_backtest(DriftFake(), dm, _cfg(topk=3, sample_count=1, **FAST), out, **kw)
    assert first["settings"]["simulate"] == ["model"] and first["model"]["portfolio"]["turnover"] > 0
    others = [n for n in first["model_signals"] + FAST["baselines"] + ["oracle"] if n != "model"]
    assert first["portfolio_not_simulated"] == others
    assert all(first[n].get("portfolio") is None for n in others)
    assert all(first[n]["long_short"]["t"] is not None for n in FAST["baselines"] + ["oracle"])
    assert list(first["limit_up"]["buys_blocked"]) == ["model"]
    assert any("simulated for model only" in n for n in first["notes"])
    topk_lines = [line for line in first["headline"] if line.startswith("Top-k")]
    assert topk_lines and all("nan" not in line and "[not simulated: best baseline" in line for line in topk_lines)
    html = (out / "report.html").read_text()
    assert "Not simulated (backtest.simulate)" in html and html.count("data:image/png;base64,") == len(FIGURES)
    rank_ic_png = (out / "daily_rank_ic.png").read_bytes()
    cumulative_png = (out / "cumulative_return.png").read_bytes()
    drawn: list[str] = []
    for name in ("_plot_cumulative", "_plot_excess", "_plot_rank_ic", "_plot_quantiles", "_plot_spread"):
        original = getattr(report_module, name)
        monkeypatch.setattr(report_module, name, lambda *a, _o=original, _n=name: (drawn.append(_n), _o(*a))[1])
    run_backtest(DriftFake(), dm, _cfg(topk=2, sample_count=1, **FAST), out, **kw)
    assert sorted(drawn) == ["_plot_cumulative", "_plot_excess"]  # the IC, quantile and spread figures: read back
    assert (out / "daily_rank_ic.png").read_bytes() == rank_ic_png
    assert (out / "cumulative_return.png").read_bytes() != cumulative_png
    every = run_backtest(DriftFake(), dm, _cfg(topk=3, sample_count=1, simulate=["all"], **FAST), out, **kw)
    assert "portfolio_not_simulated" not in every
    assert every["forecast_store"]["analysis_results"]["computed"] == len(others)  # the model's came from the first run
    assert every["model"]["portfolio"] == first["model"]["portfolio"]


@pytest.mark.parametrize("simulate, message", [
    (["volume"], "does not compute"), ([], "is empty"), (["all", "model"], "alone"), (["nope"], "not one of"),
    (["model", "model"], "twice")])
def test_simulate_refuses_what_it_cannot_trade(simulate, message) -> None:
    with pytest.raises(BacktestSettingsError, match=message):
        _cfg(simulate=simulate, **FAST)
