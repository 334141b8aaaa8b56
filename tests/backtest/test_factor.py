"""Factor analysis, long-short portfolio, lookback exposures and neutralisation: hand computations and
planted signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.backtest.exposures import lookback_features, neutralize, wide_features
from kronos.backtest.factor import autocorrelation, factor_report, ic_decay, quantile_daily, quantile_groups, top_turnover
from kronos.backtest.performance import REGION_BARS, bars_per_year, leg_turnover, long_short
from kronos.backtest.signals import oracle_signal
from kronos.data.panel import Panel

DAYS = pd.bdate_range("2024-01-01", periods=3, name="datetime")


def _series(values: list[list[float]], names: list[str], days: pd.DatetimeIndex = DAYS) -> pd.Series:
    """Wide [days x names] values as a Series on (datetime, instrument)."""
    return pd.DataFrame(values, index=days, columns=names).rename_axis(columns="instrument").stack()


def _planted(days: int = 120, names: int = 30, strength: float = 0.01, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    """A signal and a label that is strength x signal plus noise twice its size."""
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=days),
                                        [f"S{i:02d}" for i in range(names)]], names=["datetime", "instrument"])
    signal = pd.Series(rng.normal(size=len(index)), index=index)
    label = strength * signal + 2 * strength * pd.Series(rng.normal(size=len(index)), index=index)
    return signal, label


def test_quantile_groups_and_returns_by_hand() -> None:
    names = ["A", "B", "C", "D"]
    signal = _series([[4, 3, 2, 1], [1, 2, 3, 4], [1, 1, 2, 2]], names)
    label = _series([[0.04, 0.03, 0.02, 0.01], [0.01, -0.02, 0.03, 0.05], [0.0, 0.01, 0.02, 0.03]], names)
    groups = quantile_groups(signal, 2).unstack()
    assert groups.loc[DAYS[0]].tolist() == [2, 2, 1, 1] and groups.loc[DAYS[1]].tolist() == [1, 1, 2, 2]
    daily = quantile_daily(signal, label, 2)
    assert daily.loc[DAYS[0]].tolist() == pytest.approx([0.015, 0.035])
    assert daily.loc[DAYS[1]].tolist() == pytest.approx([-0.005, 0.04])
    assert daily.loc[DAYS[2]].tolist() == pytest.approx([0.005, 0.025])
    report, _ = factor_report(signal, label, quantiles=2, lags=2)
    assert report["quantile_returns"] == pytest.approx([0.005, 0.1 / 3])
    spread = np.array([0.02, 0.045, 0.02])
    assert report["spread"]["mean"] == pytest.approx(spread.mean())
    assert report["spread"]["t"] == pytest.approx(spread.mean() / (spread.std(ddof=1) / np.sqrt(3)))
    # Top group: {A, B} -> {C, D} (all new) -> {C, D} (none new).
    assert top_turnover(signal, 2).tolist() == [1.0, 0.0]
    assert autocorrelation(signal).tolist() == pytest.approx([-1.0, pd.Series([1, 2, 3, 4]).corr(
        pd.Series([1, 1, 2, 2]), method="spearman")])


def test_quantile_legs_are_formed_from_the_decision_time_universe() -> None:
    """Day 1: A (top signal) is suspended after the decision, so its label is missing. The groups are formed
    from all four names known at decision time, A stays in the top group and earns 0 (cash / marked at its
    last price); dropping A first would promote B into a top group of its own, using the future.
    Day 3 has no label at all (beyond the data): it is left out, not counted as 0."""
    names = ["A", "B", "C", "D"]
    signal = _series([[4, 3, 2, 1], [4, 3, 2, 1], [4, 3, 2, 1]], names)
    label = pd.DataFrame([[np.nan, 0.03, 0.02, 0.01], [0.04, 0.03, 0.02, 0.01], [np.nan] * 4], index=DAYS,
                         columns=pd.Index(names, name="instrument")).stack(future_stack=True)
    daily = quantile_daily(signal, label, 2)
    assert list(daily.index) == list(DAYS[:2])
    assert daily.loc[DAYS[0]].tolist() == pytest.approx([0.015, (0.0 + 0.03) / 2])  # not [0.015, 0.03]
    assert daily.loc[DAYS[1]].tolist() == pytest.approx([0.015, 0.035])
    report, _ = factor_report(signal, label, quantiles=2)
    assert report["spread"]["mean"] == pytest.approx(np.mean([0.0, 0.02]))
    assert report["labels_held_at_zero"] == 1
    result, net = long_short(signal, label, quantiles=2, cost=0.0, bars=250.0)
    np.testing.assert_allclose(net.to_numpy(), [0.0, 0.02])
    assert result["days"] == 2 and result["turnover"] == pytest.approx(1.0)  # entry day only: legs unchanged
    # A row without a label at all (not in the label Series) is the same as a missing label.
    dropped = label.dropna()
    assert quantile_daily(signal, dropped, 2).equals(daily)


def test_planted_signal_gives_rising_quantiles_and_a_positive_long_short() -> None:
    signal, label = _planted()
    report, daily = factor_report(signal, label, quantiles=5, lags=1)
    means = report["quantile_returns"]
    assert all(b > a for a, b in zip(means, means[1:])), means
    assert report["monotonicity"] == pytest.approx(1.0) and report["spread"]["t"] > 5
    result, net = long_short(signal, label, quantiles=5, cost=0.0005, bars=252.0)
    assert result["annualized_return"] > 0 and result["t"] > 5
    assert result["before_cost"]["annualized_return"] > result["annualized_return"]
    # Noise alone: no spread worth a t of 3.
    noise, _ = _planted(seed=1)
    flat, _ = factor_report(noise, label, quantiles=5, lags=1)
    assert abs(flat["spread"]["t"]) < 3


def test_long_short_costs_by_hand() -> None:
    names = ["A", "B", "C", "D"]
    signal = _series([[4, 3, 2, 1], [4, 3, 2, 1], [1, 2, 3, 4]], names)
    label = _series([[0.04, 0.03, 0.02, 0.01]] * 3, names)
    members = quantile_groups(signal, 2) == 2
    # Long leg {A, B}, {A, B}, {C, D}: weights 1/2 each; turnover 1 (entry), 0, 2 (all swapped).
    assert leg_turnover(members).tolist() == pytest.approx([1.0, 0.0, 2.0])
    result, net = long_short(signal, label, quantiles=2, cost=0.001, bars=250.0)
    gross = np.array([0.02, 0.02, -0.02])
    both_legs = np.array([2.0, 0.0, 4.0])
    np.testing.assert_allclose(net.to_numpy(), gross - both_legs * 0.001)
    assert result["annualized_return"] == pytest.approx((gross - both_legs * 0.001).mean() * 250)
    assert result["before_cost"]["annualized_return"] == pytest.approx(gross.mean() * 250)
    assert result["break_even_cost_bps"] == pytest.approx(gross.mean() / both_legs.mean() * 1e4)
    assert result["costs"]["10"] == pytest.approx((gross - both_legs * 0.001).mean() * 250)


def test_ic_decay_finds_the_lag_the_signal_predicts() -> None:
    signal, label = _planted(strength=0.01)
    # The label of date t is what the signal of t-1 predicts: lag 2 carries the skill, lag 1 none.
    wide = label.unstack("instrument")
    shifted = wide.shift(1).stack(future_stack=True).reindex(signal.index)
    decay = ic_decay(signal, shifted, 3)
    assert abs(decay[0]) < 0.05 and decay[1] > 0.3 and abs(decay[2]) < 0.05


def test_bars_per_year_from_the_calendar() -> None:
    assert bars_per_year(pd.bdate_range("2020-01-01", "2023-12-31")) == pytest.approx(261, abs=1)
    assert bars_per_year(pd.date_range("2020-01-01", "2021-12-31", freq="D")) == pytest.approx(365.25, abs=0.5)
    assert bars_per_year(pd.bdate_range("2024-01-01", periods=5), "cn") == REGION_BARS["cn"]
    # Under a year: the market's own count where known (a few months around a holiday mislead), else measured.
    assert bars_per_year(pd.bdate_range("2024-01-01", periods=100), "cn") == REGION_BARS["cn"]
    assert bars_per_year(pd.bdate_range("2024-01-01", periods=100), "none") == pytest.approx(261, abs=5)
    assert bars_per_year(pd.bdate_range("2020-01-01", "2023-12-31"), "cn") == pytest.approx(261, abs=1)


def _panel(values: dict[str, tuple[np.ndarray, np.ndarray]], days: pd.DatetimeIndex) -> Panel:
    """A panel from {name: (close, volume)}; other candle fields equal the close."""
    t = days.to_numpy()
    arrays = [np.stack([c, c, c, c, v, v * c], axis=1).astype(np.float32) for c, v in values.values()]
    return Panel(list(values), [t] * len(values), arrays)


def test_lookback_features_by_hand_and_without_the_future() -> None:
    days = pd.bdate_range("2024-01-01", periods=40)
    rng = np.random.default_rng(0)
    close = {n: 10 * np.exp(np.cumsum(rng.normal(0, 0.02, len(days)))) for n in "AB"}
    volume = {n: np.exp(rng.normal(10, 0.5, len(days))) for n in "AB"}
    panel = _panel({n: (close[n], volume[n]) for n in "AB"}, days)
    decisions = pd.DataFrame({"datetime": [days[30], days[35]], "instrument": ["A", "B"]})
    out = lookback_features(panel, decisions)
    c = np.asarray(close["A"], dtype=np.float32).astype(np.float64)
    v = np.log(np.asarray(volume["A"], dtype=np.float32).astype(np.float64))
    assert out.loc[0, "abnormal_volume"] == pytest.approx(v[30] - v[10:30].mean(), rel=1e-6)
    assert out.loc[0, "volatility"] == pytest.approx(np.diff(np.log(c))[10:30].std(ddof=1), rel=1e-6)
    # The future never reaches a feature: changing every row after day 30 leaves day 30's features.
    later = {n: (close[n].copy(), volume[n].copy()) for n in "AB"}
    for n in "AB":
        later[n][0][31:] *= 3.0
        later[n][1][31:] *= 5.0
    again = lookback_features(_panel(later, days), decisions)
    pd.testing.assert_series_equal(out.loc[0], again.loc[0])


def test_beta_exposure_by_hand() -> None:
    days = pd.bdate_range("2024-01-01", periods=80)
    rng = np.random.default_rng(1)
    market = rng.normal(0, 0.01, len(days))
    rets = {"LOW": 0.5 * market + rng.normal(0, 0.002, len(days)), "HIGH": 1.5 * market + rng.normal(0, 0.002, len(days))}
    close = pd.DataFrame({n: 10 * np.cumprod(1 + r) for n, r in rets.items()}, index=days)
    features = wide_features(close, pd.DataFrame(1e6, index=days, columns=close.columns))
    assert features["beta"].iloc[-1]["HIGH"] > 1.2 > 0.8 > features["beta"].iloc[-1]["LOW"]


def test_neutralisation_removes_a_planted_exposure() -> None:
    signal, _ = _planted(days=40, names=40, seed=2)
    rng = np.random.default_rng(3)
    exposures = pd.DataFrame({"beta": rng.normal(size=len(signal)), "size": rng.normal(size=len(signal))},
                             index=signal.index)
    loaded = signal + 3.0 * exposures["beta"] - 2.0 * exposures["size"]
    clean = neutralize(loaded, exposures)
    frame = pd.concat([clean.rename("clean"), signal.rename("true"), exposures], axis=1)
    assert loaded.groupby(level="datetime").apply(lambda d: d.corr(exposures["beta"].loc[d.index])).mean() > 0.6
    for _, day in frame.groupby(level="datetime"):
        assert abs(day["clean"].corr(day["beta"])) < 1e-8 and abs(day["clean"].corr(day["size"])) < 1e-8
        # What is left is the true signal net of its chance overlap with the exposures (40 names).
        assert day["clean"].corr(day["true"]) > 0.8
        assert abs(day["clean"].mean()) < 1e-10


def test_oracle_is_the_drift_of_the_traded_interval() -> None:
    days = pd.bdate_range("2024-01-01", periods=6)
    drift = pd.DataFrame({"A": np.arange(6.0), "B": 10 + np.arange(6.0)}, index=days)
    forecasts = pd.DataFrame({"datetime": [days[0], days[1], days[4]], "instrument": ["A", "B", "A"]})
    close = oracle_signal(forecasts, drift, "close")
    assert close.tolist()[:2] == [2.0, 13.0] and np.isnan(close.iloc[2])  # day t+2's drift; past the end: NaN
    assert oracle_signal(forecasts, drift, "open").tolist() == [1.0, 12.0, 5.0]  # open(t+1)->open(t+2): day t+1
