"""Signals from forecasts, and IC/RankIC: ours against Qlib's calc_ic on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qlib.contrib.eva.alpha import calc_ic

from kronos.backtest.exposures import neutralize
from kronos.backtest.metrics import compare, ic_report
from kronos.stats import daily_ic, mean_t
from kronos.backtest.signals import baseline_signal, model_signal


def _forecasts() -> pd.DataFrame:
    return pd.DataFrame({
        "datetime": pd.to_datetime(["2024-01-02", "2024-01-02"]),
        "instrument": ["A", "B"],
        "last_close": [10.0, 20.0],
        "past_return": [0.05, -0.02],
        "next_return": [0.01, 0.0],
        "horizon_return": [0.02, -0.01],
        "pred_close_1": [11.0, 19.0],
        "pred_close_2": [9.0, 21.0],
        "pred_close_3": [12.0, 22.0],
    })


@pytest.mark.parametrize("kind,expected_a,expected_b", [
    ("last", 12 / 10 - 1, 22 / 20 - 1),
    ("mean", np.mean([0.1, -0.1, 0.2]), np.mean([-0.05, 0.05, 0.1])),
    ("max", 0.2, 0.1),
    ("min", -0.1, -0.05),
])
def test_model_signal_reduces_predicted_return(kind: str, expected_a: float, expected_b: float) -> None:
    sig = model_signal(_forecasts(), kind)
    assert sig.index.names == ["datetime", "instrument"]
    assert sig.loc[(pd.Timestamp("2024-01-02"), "A")] == pytest.approx(expected_a)
    assert sig.loc[(pd.Timestamp("2024-01-02"), "B")] == pytest.approx(expected_b)


def test_signals_from_the_paths_summary() -> None:
    # summarize_paths on two windows of 4 paths, H = 2, deal = close: the trade interval is step 1 -> 2.
    from kronos.backtest.forecast import summarize_paths

    close = np.array([[[10.0, 11.0], [10.0, 9.0], [10.0, 10.5], [10.0, 10.2]],
                      [[20.0, 20.0], [20.0, 20.0], [20.0, 20.0], [20.0, 20.0]]])     # [B=2, S=4, H=2]
    summary = summarize_paths(close, close, np.array([10.5, 19.0]))
    trade = np.array([0.1, -0.1, 0.05, 0.02])
    assert summary["trade_mean"][0] == pytest.approx(trade.mean())
    assert summary["trade_std"][0] == pytest.approx(trade.std())
    assert summary["trade_up"][0] == pytest.approx(0.75)
    assert summary["pred_close_2"][0] == pytest.approx(np.mean([11.0, 9.0, 10.5, 10.2]))
    assert summary["pred_up_2"][0] == pytest.approx(0.25)  # only 11.0 is above the last close 10.5
    assert summary["pred_up_1"][1] == 1.0 and summary["trade_std"][1] == 0.0
    frame = _forecasts().iloc[:0].reindex(range(2)).assign(
        datetime=pd.Timestamp("2024-01-02"), instrument=["A", "B"], **{k: v for k, v in summary.items()})
    assert model_signal(frame, "trade").tolist() == pytest.approx([trade.mean(), 0.0])
    assert model_signal(frame, "sharpe").tolist() == pytest.approx([trade.mean() / trade.std(), 0.0])
    assert model_signal(frame, "prob_up").tolist() == pytest.approx([0.75, 0.0])


def test_baselines_are_opposite_and_use_the_past_return() -> None:
    momentum, reversal = baseline_signal(_forecasts(), "momentum"), baseline_signal(_forecasts(), "reversal")
    assert list(momentum) == [0.05, -0.02]
    assert list(reversal) == [-0.05, 0.02]


def test_unknown_kinds_name_the_config_key() -> None:
    with pytest.raises(ValueError, match="backtest.signal"):
        model_signal(_forecasts(), "median")
    with pytest.raises(ValueError, match="backtest.baselines"):
        baseline_signal(_forecasts(), "trend")


def _panel(seed: int = 0, days: int = 30, names: int = 25) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=days), [f"S{i}" for i in range(names)]],
                                       names=["datetime", "instrument"])
    signal = pd.Series(rng.normal(size=len(index)), index=index)
    # Rounded labels make ties, which Spearman must rank as averages.
    label = pd.Series(np.round(0.3 * signal.to_numpy() + rng.normal(size=len(index)), 1), index=index)
    return signal, label


def _ics(signal: pd.Series, label: pd.Series) -> pd.DataFrame:
    """The backtest's daily IC and RankIC (kronos.backtest.metrics.ic_report on one label)."""
    return ic_report(signal, label.to_frame("label"), {"label": 1})[1]["label"]


def _ic(signal: pd.Series, control: pd.Series) -> pd.Series:
    """Daily Pearson IC by kronos.stats.daily_ic, the one definition."""
    return daily_ic(pd.DataFrame({"s": signal, "c": control}), "s", "c", method="pearson")


def test_daily_ic_agrees_with_qlib_calc_ic() -> None:
    signal, label = _panel()
    ours = _ics(signal, label)
    ic, ric = calc_ic(signal, label)
    np.testing.assert_allclose(ours["ic"], ic.loc[ours.index], rtol=1e-10)
    np.testing.assert_allclose(ours["rank_ic"], ric.loc[ours.index], rtol=1e-10)
    assert len(ours) == len(ic)


def test_ic_summary_is_mean_and_mean_over_std() -> None:
    signal, label = _panel(seed=1)
    summary = ic_report(signal, label.to_frame("label"), {"label": 1})[0]["label"]
    ic, ric = calc_ic(signal, label)
    assert summary["ic"] == pytest.approx(ic.mean())
    assert summary["icir"] == pytest.approx(ic.mean() / ic.std())
    assert summary["rank_ic"] == pytest.approx(ric.mean())
    assert summary["rank_icir"] == pytest.approx(ric.mean() / ric.std())
    assert summary["rank_ic"] > 0.15  # the planted 0.3 loading shows through the noise


def test_constant_cross_sections_and_nans_are_dropped() -> None:
    signal, label = _panel(days=3, names=5)
    first = signal.index.get_level_values("datetime")[0]
    signal.loc[first] = 1.0  # no cross-sectional spread that day: correlation undefined
    label.iloc[-1] = np.nan
    daily = _ics(signal, label)
    assert first not in daily.index and len(daily) == 2
    assert np.isfinite(daily.to_numpy()).all()


def test_ic_report_scores_every_label_with_its_overlap() -> None:
    signal, label = _panel(seed=2, days=30)
    other = label.sample(frac=1.0, random_state=0).set_axis(label.index)  # a label unrelated to the signal
    labels = pd.DataFrame({"next_return": label, "horizon_return": other})
    summaries, dailies = ic_report(signal, labels, {"next_return": 1, "horizon_return": 3})
    assert set(summaries) == {"next_return", "horizon_return"}
    assert summaries["next_return"]["days"] == 30 == len(dailies["horizon_return"])
    daily = dailies["horizon_return"]["rank_ic"]
    assert summaries["horizon_return"]["rank_ic_t"] == pytest.approx(mean_t(daily, overlap=3).t)
    assert summaries["horizon_return"]["rank_ic_p"] == pytest.approx(mean_t(daily, overlap=3).p)
    assert summaries["next_return"]["rank_ic_t"] == pytest.approx(mean_t(dailies["next_return"]["rank_ic"]).t)
    assert summaries["next_return"]["rank_ic_t"] > 5  # the planted loading is highly significant


def test_overlap_t_corrects_overlap_inflation() -> None:
    """Daily ICs of an H-day label are an H-term moving sum of independent shocks: the plain t overstates
    the evidence by about sqrt(H); the overlap-aware t (kronos.stats, formulas tested in tests/test_stats.py)
    brings it back near the i.i.d. scale."""
    rng = np.random.default_rng(0)
    H, n, trials = 5, 2000, 200
    plain, nw = [], []
    for _ in range(trials):
        shocks = rng.normal(size=n + H - 1)
        x = np.convolve(shocks, np.ones(H), mode="valid")  # zero mean, overlapping
        plain.append(mean_t(x).t)
        nw.append(mean_t(x, overlap=H).t)
    assert np.std(plain) > 1.8          # ~sqrt(5) = 2.2: false "significance" everywhere
    assert 0.8 < np.std(nw) < 1.25      # ~1 under the null


def test_compare_tests_the_daily_rank_ic_difference() -> None:
    days = pd.bdate_range("2024-01-01", periods=40)
    rng = np.random.default_rng(3)
    base = pd.DataFrame({"ic": 0.0, "rank_ic": rng.normal(0.0, 0.05, len(days))}, index=days)
    better = base.assign(rank_ic=base["rank_ic"] + 0.05 + rng.normal(0.0, 0.01, len(days)))
    result = compare(better, base)
    diff = better["rank_ic"] - base["rank_ic"]
    assert result["days"] == 40 and result["rank_ic_diff"] == pytest.approx(diff.mean())
    assert result["t"] == pytest.approx(mean_t(diff.to_numpy()).t) and result["p"] < 1e-6
    # Only the common days enter.
    assert compare(better.iloc[5:], base)["days"] == 35


def test_residual_signal_removes_the_control_per_day() -> None:
    signal, control = _panel(seed=4)
    mixed = signal + 2.0 * control
    resid = neutralize(mixed, control.to_frame("control"))
    assert np.abs(_ic(resid, control)).max() < 1e-10
    assert _ic(mixed, control).mean() > 0.5
