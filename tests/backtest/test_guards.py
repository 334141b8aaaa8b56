"""Issue 27: statistics that cannot be computed are null with a reason and a warning, and the verdict cannot judge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.backtest.guards import (
    MIN_DAYS,
    cross_section_reason,
    days_reason,
    label_reason,
    portfolio_reason,
    signal_reason,
)
from kronos.train import train
from tests.lightning.conftest import FAST, FAST_RUN, compose_config


def _series(values: np.ndarray, days: int, names: int) -> pd.Series:
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=days), [f"S{i}" for i in range(names)]],
                                       names=["datetime", "instrument"])
    return pd.Series(values, index=index)


def test_the_rules() -> None:
    rng = np.random.default_rng(0)
    one = cross_section_reason(_series(rng.normal(size=30), 30, 1), _series(rng.normal(size=30), 30, 1), 3, "ICs")
    assert one == "only 1 instrument(s) with a signal and a label on the median day; ICs need at least 3"
    assert cross_section_reason(_series(rng.normal(size=60), 30, 2), _series(rng.normal(size=60), 30, 2), 5, "Q")
    assert cross_section_reason(_series(rng.normal(size=300), 30, 10), _series(rng.normal(size=300), 30, 10), 5,
                                "Q") is None
    assert signal_reason(_series(np.zeros(300), 30, 10), 5) == "the signal is constant (0 on every row)"
    assert "2 distinct value(s) on the median day" in signal_reason(_series(np.tile([0.0, 1.0], 150), 30, 10), 5)
    assert signal_reason(_series(rng.normal(size=300), 30, 10), 5) is None
    assert signal_reason(_series(np.tile([0.0, 1.0], 150), 30, 10)) is None  # ranks, only too few for quantiles
    assert days_reason(4).startswith("only 4 decision day(s)") and days_reason(MIN_DAYS) is None
    assert label_reason(_series(np.zeros(300), 30, 10)).startswith("the traded return is the same for every")
    assert label_reason(_series(rng.normal(size=300), 30, 10)) is None
    idle = pd.DataFrame({"turnover": np.full(5, 1e-9), "value": np.full(5, 1e-3), "account": np.full(5, 1e8),
                         "bench": np.full(5, 0.01)})
    assert portfolio_reason(idle, "SH000300").startswith("the portfolio never invested")
    gappy = pd.DataFrame({"turnover": np.ones(10), "value": np.ones(10), "account": np.ones(10),
                          "bench": [0.01] * 5 + [np.nan] * 5})
    assert "has a return on only 50% of the portfolio's days" in portfolio_reason(gappy, "SH000300")


def _backtest(tmp_path: Path, tiny_pair, *extra: str, data: list[str] | None = None) -> dict:
    tokenizer, predictor = tiny_pair
    cfg = compose_config([*(data or FAST), f"output_root={tmp_path}", "name=t", "stage=backtest", "logger=csv",
                          f"++weights.tokenizer={tokenizer}", f"++weights.predictor={predictor}", *extra])
    train(cfg)
    text = (tmp_path / "t" / "backtest" / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    return json.loads(text)


SIX = ["data.source.n_instruments=6", "data.source.n_steps=160", *FAST_RUN]


def _cannot_judge(metrics: dict, reason: str) -> None:
    assert reason in metrics["model"]["unavailable"]["ic"]
    assert metrics["cannot_judge"] == "no statistic of the signal: " + metrics["model"]["unavailable"]["ic"]
    assert metrics["verdict"].startswith("Cannot judge the model's")
    assert all(s["verdict"].startswith("cannot judge model against") for s in metrics["significance"].values())
    assert metrics["model"]["ic"]["trade_return"]["rank_ic_t"] is None
    assert metrics["model"]["portfolio"]["alpha"]["annualized"] is None
    assert any(reason in w for w in metrics["warnings"])


def test_one_path_sharpe_signal_is_constant(tmp_path: Path, tiny_pair) -> None:
    metrics = _backtest(tmp_path, tiny_pair, "backtest.signal=sharpe", "backtest.sampling.sample_count=1", data=SIX)
    _cannot_judge(metrics, "the signal is constant")


def test_a_short_test_split_gives_no_alpha(tmp_path: Path, tiny_pair) -> None:
    metrics = _backtest(tmp_path, tiny_pair, "data.splits.train=0.85", "data.splits.val=0.1", "data.splits.test=0.05",
                        data=SIX)
    _cannot_judge(metrics, "decision day(s); t-statistics and annualised figures need at least 20")


def test_one_instrument_has_no_cross_section(tmp_path: Path, tiny_pair) -> None:
    metrics = _backtest(tmp_path, tiny_pair, data=["data.source.n_instruments=1", "data.source.n_steps=160", *FAST_RUN])
    _cannot_judge(metrics, "only 1 instrument(s) with a signal and a label on the median day")


def test_a_portfolio_that_never_invests_has_no_break_even(tmp_path: Path, tiny_pair) -> None:
    metrics = _backtest(tmp_path, tiny_pair, "backtest.max_participation=1e-12", "backtest.topk=2", "backtest.n_drop=1",
                        data=SIX)
    assert metrics["model"]["unavailable"]["portfolio"].startswith("the portfolio never invested")
    assert metrics["model"]["portfolio"]["break_even_cost_bps"] is None
    assert metrics["model"]["ic"]["trade_return"]["rank_ic"] is not None  # the ranking itself is still measured
    assert metrics["cannot_judge"].startswith("no portfolio figure: the portfolio never invested")
    assert metrics["verdict"].startswith("Cannot judge the model's trade signal")
    line = next(x for x in metrics["headline"] if "break-even cost" in x)
    assert ": model nan" in line  # no figure where the portfolio never invested


def test_fewer_instruments_than_quantiles_nulls_only_the_groups(tmp_path: Path, tiny_pair) -> None:
    metrics = _backtest(tmp_path, tiny_pair)  # the FAST market: 4 instruments, 5 quantiles
    assert "backtest.quantiles=5 groups need at least 5" in metrics["model"]["unavailable"]["factor"]
    assert metrics["model"]["factor"]["spread"]["mean"] is None and metrics["model"]["long_short"]["t"] is None
    assert metrics["model"]["ic"]["trade_return"]["rank_ic"] is not None
    assert metrics["cannot_judge"].startswith("no quantile spread: only 4 instrument(s)")
    assert not any(s["verdict"].startswith("cannot judge") for s in metrics["significance"].values())


@pytest.mark.parametrize("volume", ["none", "zero"])
def test_csv_without_volume_runs_without_the_volume_baseline(tmp_path: Path, tiny_pair, volume: str) -> None:
    """Issue 27: a CSV without volume columns (or all-zero volume) ended in "the signal is empty" after forecasting."""
    from tests.lightning.test_preflight import _csv_market

    data = _csv_market(tmp_path / "csv", volume=volume == "zero", names=tuple(f"S{i}" for i in range(6)))
    if volume == "zero":
        for f in data.iterdir():
            pd.read_csv(f).assign(volume=0.0).to_csv(f, index=False)
    metrics = _backtest(tmp_path, tiny_pair, data=["data=csv", f"data.source.path={data}", *FAST_RUN])
    assert metrics["baselines"] == ["momentum", "reversal", "low_vol"] and "volume" not in metrics
    assert any(w.startswith("Baseline(s) volume skipped: no value on any decision row") for w in metrics["warnings"])
    assert metrics["model"]["ic"]["trade_return"]["days"] > 0
