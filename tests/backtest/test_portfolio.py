"""Top-k dropout portfolio on a Qlib provider built by csv_to_qlib from synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.data.qlib_provider import build_provider
from kronos.backtest.portfolio import run_topk_dropout, summarize, use_provider
from kronos.backtest.settings import BacktestSettingsError

COSTS = {"open_cost": 0.0005, "close_cost": 0.0015, "min_cost": 5.0}
SETTINGS = dict(topk=4, n_drop=1, hold_thresh=1, account=1e8, costs=COSTS, limit_threshold=0.095, deal_price="close")


def _closes(datamodule) -> pd.DataFrame:
    """Wide raw closes [dates x Qlib symbols] of the synthetic panel."""
    wide = datamodule.panel.field_frame("close").astype(np.float64)
    wide.columns = [c.upper() for c in wide.columns]
    return wide


def _signal(closes: pd.DataFrame, values: np.ndarray) -> pd.Series:
    return pd.DataFrame(values, index=closes.index, columns=closes.columns).stack().rename_axis(
        ["datetime", "instrument"]).sort_index()


def _limit_expressions(threshold: float) -> tuple[str, str]:
    """Qlib's own limit rule as expressions on the close-to-close change (its float ``limit_threshold`` reads
    ``$change``, whose unit differs between providers)."""
    change = "($close / Ref($close, 1) - 1)"
    return f"Ge({change}, {threshold})", f"Le({change}, {-threshold})"


@pytest.fixture(scope="module")
def window(datamodule) -> pd.DataFrame:
    """Closes over the last 60 days of the synthetic calendar."""
    return _closes(datamodule).iloc[-60:]


def test_matches_qlib_backtest_called_directly(provider: Path, window: pd.DataFrame) -> None:
    from qlib.backtest import backtest
    from qlib.backtest.executor import SimulatorExecutor
    from qlib.contrib.evaluate import risk_analysis
    from qlib.contrib.strategy import TopkDropoutStrategy

    signal = _signal(window.iloc[:-1], np.random.default_rng(0).normal(size=window.iloc[:-1].shape))
    # Qlib's own defaults: 95 % invested, 238 trading days a year.
    ours = run_topk_dropout(signal, provider, benchmark="SYN000", region="us", risk_degree=0.95, bars=238,
                            **SETTINGS)

    days = ours.report.index
    metrics, _ = backtest(
        start_time=days[0], end_time=days[-1],
        strategy=TopkDropoutStrategy(signal=signal, topk=4, n_drop=1, hold_thresh=1),
        executor=SimulatorExecutor(time_per_step="day", generate_portfolio_metrics=True),
        benchmark="SYN000", account=1e8,
        exchange_kwargs={"freq": "day", "codes": sorted(window.columns), "deal_price": "close", "trade_unit": 1,
                         "limit_threshold": _limit_expressions(0.095), **COSTS},
    )
    theirs = metrics["1day"][0]
    pd.testing.assert_frame_equal(ours.report, theirs)
    assert days[0] == signal.index.get_level_values(0)[0] + pd.offsets.BDay(1)  # trades from the next day
    for key, series in {"excess_return_with_cost": theirs["return"] - theirs["bench"] - theirs["cost"],
                        "excess_return_without_cost": theirs["return"] - theirs["bench"],
                        "return_with_cost": theirs["return"] - theirs["cost"]}.items():
        expected = risk_analysis(series, freq="day")["risk"]
        for stat in ("annualized_return", "information_ratio", "max_drawdown"):
            assert ours.summary[key][stat] == pytest.approx(expected[stat], rel=1e-12)
    # And Qlib's own definitions, recomputed: additive annualisation over 238 days.
    r = theirs["return"] - theirs["bench"] - theirs["cost"]
    assert ours.summary["excess_return_with_cost"]["annualized_return"] == pytest.approx(r.mean() * 238)
    assert ours.summary["excess_return_with_cost"]["information_ratio"] == pytest.approx(r.mean() / r.std() * np.sqrt(238))
    assert ours.summary["turnover"] == pytest.approx(theirs["turnover"].mean())
    assert ours.summary["turnover"] > 0 and ours.report["cost"].sum() > 0


def test_oracle_beats_anti_oracle_so_dates_are_aligned(provider: Path, window: pd.DataFrame) -> None:
    # Qlib fills day t+1's trades at t+1's close with day t's signal: they earn close[t+2] / close[t+1].
    future = (window.shift(-2) / window.shift(-1) - 1).iloc[:-3]
    settings = SETTINGS | {"n_drop": 4, "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0},
                           "limit_threshold": None}
    good = run_topk_dropout(_signal(future, future.to_numpy()), provider, benchmark=None, **settings)
    bad = run_topk_dropout(_signal(future, -future.to_numpy()), provider, benchmark=None, **settings)
    assert good.summary["excess_return_without_cost"]["annualized_return"] > 1.0
    assert bad.summary["excess_return_without_cost"]["annualized_return"] < -1.0
    assert good.benchmark == "equal-weighted universe"


def test_equal_weight_and_csv_benchmarks(provider: Path, window: pd.DataFrame, tmp_path: Path) -> None:
    signal = _signal(window.iloc[:-1], np.random.default_rng(1).normal(size=window.iloc[:-1].shape))
    equal = run_topk_dropout(signal, provider, benchmark=None, **SETTINGS)
    expected = (window / window.shift(1) - 1).mean(axis=1).reindex(equal.report.index)
    # Qlib evaluates the expression in float32: agreement to float32 resolution.
    np.testing.assert_allclose(equal.report["bench"], expected, rtol=1e-5, atol=1e-7)

    index_close = window["SYN003"] * 2.0
    csv = tmp_path / "bench.csv"
    pd.DataFrame({"Date": index_close.index.strftime("%Y-%m-%d"), "Close": index_close.to_numpy()}).to_csv(csv, index=False)
    from_csv = run_topk_dropout(signal, provider, benchmark=str(csv), **SETTINGS)
    np.testing.assert_allclose(from_csv.report["bench"], index_close.pct_change().reindex(equal.report.index), rtol=1e-5)
    assert from_csv.benchmark == "bench"


def test_bad_benchmarks_say_what_to_set(provider: Path, window: pd.DataFrame, tmp_path: Path) -> None:
    """Each bad benchmark is a BacktestSettingsError, which `python -m kronos.train` shows as one line (QA: they
    were ValueError / FileNotFoundError and printed a traceback)."""
    signal = _signal(window.iloc[:-1], np.zeros(window.iloc[:-1].shape))
    with pytest.raises(BacktestSettingsError, match=r"NOPE.*backtest.benchmark \(or data.benchmark\)"):
        run_topk_dropout(signal, provider, benchmark="NOPE", **SETTINGS)
    with pytest.raises(BacktestSettingsError, match="missing.csv"):
        run_topk_dropout(signal, provider, benchmark=str(tmp_path / "missing.csv"), **SETTINGS)
    bad = tmp_path / "bad.csv"
    bad.write_text("day,price\n2020-01-01,1\n")
    with pytest.raises(BacktestSettingsError, match="needs a date column"):
        run_topk_dropout(signal, provider, benchmark=str(bad), **SETTINGS)
    elsewhere = tmp_path / "old.csv"
    elsewhere.write_text("date,close\n1990-01-02,1\n1990-01-03,1.1\n")
    with pytest.raises(BacktestSettingsError, match=r"no dates between .* \(the backtest period\)"):
        run_topk_dropout(signal, provider, benchmark=str(elsewhere), **SETTINGS)


def test_limit_up_day_blocks_buying(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-01", periods=8)
    flat = np.full(len(days), 10.0)
    jump = flat.copy()
    jump[3:] = 11.0  # +10% on day 3: limit-up, not buyable that day
    frames = {name: pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1e6}, index=days)
              for name, c in {"UP": jump, "FLAT": flat}.items()}
    provider = build_provider(frames, tmp_path / "limits")
    signal = pd.Series([1.0, 0.0] * len(days), index=pd.MultiIndex.from_product([days, ["UP", "FLAT"]],
                                                                                names=["datetime", "instrument"]))
    settings = SETTINGS | {"topk": 1, "n_drop": 1}
    # The backtest starts on day 3, so the first buy of UP falls on its limit-up day.
    blocked = run_topk_dropout(signal, provider, benchmark="FLAT", start=days[3], **settings)
    free = run_topk_dropout(signal, provider, benchmark="FLAT", start=days[3], **settings | {"limit_threshold": None})
    assert blocked.report["turnover"].iloc[0] == 0.0
    assert free.report["turnover"].iloc[0] > 0.5


def test_provider_switch_reinitialises_qlib(provider: Path, tmp_path: Path) -> None:
    from qlib.data import D

    days = pd.bdate_range("2031-03-03", periods=4)
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=days)
    other = build_provider({"ONLY": frame}, tmp_path / "other")
    use_provider(other)
    assert list(D.calendar(freq="day")) == list(days)
    use_provider(provider)
    assert D.calendar(freq="day")[0] < days[0]
    with pytest.raises(FileNotFoundError, match="csv_to_qlib"):
        use_provider(tmp_path / "nowhere")


def test_summarize_matches_hand_computed_values() -> None:
    report = pd.DataFrame({"return": [0.01, 0.02, -0.01], "cost": [0.001] * 3, "bench": [0.0, 0.01, 0.0],
                           "turnover": [1.0, 0.5, 0.0]}, index=pd.bdate_range("2024-01-01", periods=3))
    summary = summarize(report, 250.0)
    assert summary["excess_return_without_cost"]["annualized_return"] == pytest.approx(np.mean([0.01, 0.01, -0.01]) * 250)
    assert summary["excess_return_with_cost"]["max_drawdown"] == pytest.approx(-0.011 - 0.0)
    assert summary["turnover"] == pytest.approx(0.5)
    # Costs one way on each day's turnover: excess at 20 bps = mean(excess - turnover * 0.002) * 250.
    excess, turnover = np.array([0.01, 0.01, -0.01]), np.array([1.0, 0.5, 0.0])
    assert summary["excess_return_by_cost_bps"]["20"] == pytest.approx(np.mean(excess - turnover * 0.002) * 250)
    assert summary["break_even_cost_bps"] == pytest.approx(excess.mean() / turnover.mean() * 1e4)
    # Alpha/beta: OLS of the return on the benchmark; with 3 points the fit is exact in closed form.
    r, m = np.array([0.01, 0.02, -0.01]), np.array([0.0, 0.01, 0.0])
    beta = np.cov(r, m, ddof=1)[0, 1] / m.var(ddof=1)
    assert summary["alpha"]["beta"] == pytest.approx(beta)
    assert summary["alpha"]["annualized"] == pytest.approx((r.mean() - beta * m.mean()) * 250)
    assert summary["alpha_after_cost"]["annualized"] == pytest.approx((r.mean() - 0.001 - beta * m.mean()) * 250)


def test_reinitialised_elsewhere_is_noticed(provider: Path, tmp_path: Path) -> None:
    import qlib
    from qlib.data import D

    days = pd.bdate_range("2032-01-05", periods=3)
    other = build_provider({"X": pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=days)},
                           tmp_path / "elsewhere")
    use_provider(provider)
    qlib.init(provider_uri=str(other), region="cn")  # e.g. a Qlib data source loading its panel
    use_provider(provider)
    assert D.calendar(freq="day")[0] < days[0]


def _provider(tmp_path: Path, closes: dict[str, np.ndarray], days: pd.DatetimeIndex,
              volumes: dict[str, np.ndarray] | None = None) -> Path:
    frames = {name: pd.DataFrame({"open": c, "high": c, "low": c, "close": c,
                                  "volume": (volumes or {}).get(name, np.full(len(days), 1e6))}, index=days)
              for name, c in closes.items()}
    return build_provider(frames, tmp_path / "provider")


def _ranking(days: pd.DatetimeIndex, names: list[str], prefer: list[str]) -> pd.Series:
    """A signal preferring ``prefer[d]`` on day d (1 for it, 0 for the others)."""
    values = [1.0 if name == prefer[d] else 0.0 for d in range(len(days)) for name in names]
    return pd.Series(values, index=pd.MultiIndex.from_product([days, names], names=["datetime", "instrument"]))


def test_a_suspended_day_cannot_trade_whatever_the_limit_setting(tmp_path: Path) -> None:
    """Zero volume on a day (Qlib data forward-fills the price): no buy and no sell that day, even with
    price limits off -- Qlib alone would trade it at the stale close."""
    days = pd.bdate_range("2024-01-01", periods=10)
    flat = np.full(len(days), 10.0)
    volume = np.full(len(days), 1e6)
    volume[[3, 7]] = 0.0  # suspended on day 3 (the first buy) and day 7 (the sell of day 6's signal)
    provider = _provider(tmp_path, {"SUSP": flat.copy(), "FLAT": flat.copy()}, days, {"SUSP": volume})
    signal = _ranking(days, ["SUSP", "FLAT"], ["SUSP"] * 6 + ["FLAT"] * 4)
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0}}
    for limit in (None, "region", 0.095):
        report = run_topk_dropout(signal, provider, benchmark="FLAT", start=days[3], end=days[8],
                                  **settings | {"limit_threshold": limit}).report
        turnover = report["turnover"]
        assert turnover.loc[days[3]] == 0.0 and turnover.loc[days[4]] > 0.5   # bought the day after
        # Day 6's signal says FLAT: Qlib would swap on day 7, but SUSP cannot be sold then (only the 5 %
        # cash reserve moves); the swap happens on day 8.
        assert turnover.loc[days[7]] < 0.1 and turnover.loc[days[8]] > 0.5
    # Without the suspension the first buy happens on day 3.
    free = _provider(tmp_path / "free", {"SUSP": flat.copy(), "FLAT": flat.copy()}, days)
    report = run_topk_dropout(signal, free, benchmark="FLAT", start=days[3], end=days[8], **settings).report
    assert report["turnover"].loc[days[3]] > 0.5


def test_a_suspended_day_blocks_selling(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-01", periods=10)
    flat = np.full(len(days), 10.0)
    volume = np.full(len(days), 1e6)
    volume[6] = np.nan  # missing volume on the day Qlib would sell SUSP on day 5's signal
    provider = _provider(tmp_path, {"SUSP": flat.copy(), "FLAT": flat.copy()}, days, {"SUSP": volume})
    signal = _ranking(days, ["SUSP", "FLAT"], ["SUSP"] * 5 + ["FLAT"] * 5)
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "limit_threshold": None,
                           "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0}}
    report = run_topk_dropout(signal, provider, benchmark="FLAT", start=days[2], end=days[8], **settings).report
    # Only the 5 % cash reserve moves on day 6; SUSP (95 % of the book) is sold on day 7.
    assert report["turnover"].loc[days[6]] < 0.1 and report["turnover"].loc[days[7]] > 0.5


def test_board_aware_limits_in_the_portfolio(tmp_path: Path) -> None:
    """+10 % is limit-up for a main-board stock (no buy) but an ordinary day for a ChiNext one (20 % limit)."""
    days = pd.bdate_range("2024-01-01", periods=8)
    flat = np.full(len(days), 10.0)
    jump = flat.copy()
    jump[3:] = 11.0
    provider = _provider(tmp_path, {"SH600001": jump.copy(), "SZ300001": jump.copy(), "SH600002": flat}, days)
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "limit_threshold": "region"}
    for name, blocked in (("SH600001", True), ("SZ300001", False)):
        signal = _ranking(days, ["SH600001", "SZ300001", "SH600002"], [name] * len(days))
        report = run_topk_dropout(signal, provider, benchmark="SH600002", start=days[3], region="cn", **settings).report
        assert (report["turnover"].iloc[0] == 0.0) == blocked, name
        # A uniform 9.5 % threshold (the old rule) blocks both.
        uniform = run_topk_dropout(signal, provider, benchmark="SH600002", start=days[3], region="cn",
                                   **settings | {"limit_threshold": 0.095}).report
        assert uniform["turnover"].iloc[0] == 0.0


def test_lot_size_follows_the_region(tmp_path: Path) -> None:
    """cn trades lots of 100 shares: 1,000 cash at 30/share buys nothing; none (crypto) buys fractions."""
    days = pd.bdate_range("2024-01-01", periods=6)
    provider = _provider(tmp_path, {"A": np.full(len(days), 30.0), "B": np.full(len(days), 30.0)}, days)
    signal = _ranking(days, ["A", "B"], ["A"] * len(days))
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "account": 1000.0, "limit_threshold": None,
                           "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0}}
    cn = run_topk_dropout(signal, provider, benchmark=None, region="cn", **settings).report
    crypto = run_topk_dropout(signal, provider, benchmark=None, region="none", **settings).report
    assert cn["turnover"].sum() == 0.0
    assert crypto["turnover"].iloc[0] > 0.9


def test_a_delisted_name_is_sold_at_its_last_price(tmp_path: Path) -> None:
    """GONE stops trading after day 5 (no rows at all afterwards): the portfolio sells it on day 5 at its
    last close instead of holding it at that price forever."""
    days = pd.bdate_range("2024-01-01", periods=10)
    frames = {"GONE": pd.DataFrame({"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 1e6},
                                   index=days[:6]),
              "STAY": pd.DataFrame({"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 1e6},
                                   index=days)}
    frames["LOW"] = frames["STAY"].copy()
    provider = build_provider(frames, tmp_path / "provider")
    signal = _ranking(days[:5], ["GONE", "STAY", "LOW"], ["GONE"] * 5)
    signal = pd.concat([signal, _ranking(days[5:], ["STAY", "LOW"], ["STAY"] * 5)]).sort_index()
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "limit_threshold": None,
                           "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0}}
    result = run_topk_dropout(signal, provider, benchmark="STAY", start=days[1], end=days[8], **settings)
    assert result.summary["delisted_sales"] == 1
    report = result.report
    # Fully invested in GONE from day 1; on day 5 (its last trading day) it is sold: cash afterwards.
    assert report["value"].loc[days[4]] == pytest.approx(1e8, rel=1e-6)
    assert report["turnover"].loc[days[5]] > 0.9
    assert report["value"].loc[days[7]] > 0.9e8  # STAY bought with the proceeds, not stuck in GONE
    assert report["cash"].loc[days[7]] < 0.1e8


def test_a_name_at_limit_up_is_not_bought_and_counted(tmp_path: Path) -> None:
    """UP opens day 3 at +10 % (limit-up for a main-board stock) with deal_price=open: the buy of day 2's
    signal is refused and counted; measured from the open, not the close (which is back to +0 %)."""
    days = pd.bdate_range("2024-01-01", periods=8)
    close = np.full(len(days), 10.0)
    opened = close.copy()
    opened[3] = 11.0
    frames = {"SH600001": pd.DataFrame({"open": opened, "high": 11.0, "low": 10.0, "close": close, "volume": 1e6},
                                       index=days),
              "SH600002": pd.DataFrame({"open": 10.0, "high": 10.0, "low": 10.0, "close": 10.0, "volume": 1e6},
                                       index=days)}
    provider = build_provider(frames, tmp_path / "provider")
    signal = _ranking(days, ["SH600001", "SH600002"], ["SH600001"] * len(days))
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "limit_threshold": "region", "deal_price": "open"}
    result = run_topk_dropout(signal, provider, benchmark="SH600002", start=days[3], region="cn", **settings)
    assert result.report["turnover"].loc[days[3]] == 0.0 and result.report["turnover"].loc[days[4]] > 0.9
    assert result.summary["blocked_buys_limit_up"] == 1
    at_close = run_topk_dropout(signal, provider, benchmark="SH600002", start=days[3], region="cn",
                                **settings | {"deal_price": "close"})
    assert at_close.report["turnover"].loc[days[3]] > 0.9 and at_close.summary["blocked_buys_limit_up"] == 0


def test_orders_are_capped_by_participation_and_counted(tmp_path: Path) -> None:
    days = pd.bdate_range("2024-01-01", periods=8)
    provider = _provider(tmp_path, {"A": np.full(len(days), 10.0), "B": np.full(len(days), 10.0)}, days,
                         {"A": np.full(len(days), 1000.0), "B": np.full(len(days), 1000.0)})
    signal = _ranking(days, ["A", "B"], ["A"] * len(days))
    settings = SETTINGS | {"topk": 1, "n_drop": 1, "account": 1e6, "limit_threshold": None,
                           "costs": {"open_cost": 0.0, "close_cost": 0.0, "min_cost": 0.0}}
    free = run_topk_dropout(signal, provider, benchmark=None, region="us", **settings)
    capped = run_topk_dropout(signal, provider, benchmark=None, region="us", max_participation=0.1, **settings)
    assert free.summary["clipped_orders"] == 0 and free.report["turnover"].iloc[0] > 0.9
    # 10 % of 1,000 shares at 10 = 1,000 cash a day of a 1e6 account.
    assert capped.report["turnover"].iloc[0] == pytest.approx(1000 / 1e6, rel=1e-6)
    assert capped.summary["clipped_orders"] >= 1


def test_equal_weighted_benchmark_holds_members_only(provider: Path, window: pd.DataFrame) -> None:
    from kronos.backtest.portfolio import equal_weight_returns

    days = window.index[-20:]
    names = list(window.columns[:4])
    members = _signal(window.loc[days, names[:2]], np.ones((len(days), 2)))
    use_provider(provider)
    ours = equal_weight_returns(names, days[1], days[-1], members=members)
    expected = (window[names[:2]].pct_change().loc[days[1]:days[-1]]).mean(axis=1)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), atol=1e-6)  # float32 storage
