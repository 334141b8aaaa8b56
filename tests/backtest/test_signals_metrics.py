"""Signals from forecasts, and IC/RankIC: ours against Qlib's calc_ic on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qlib.contrib.eva.alpha import calc_ic

from kronos.backtest.metrics import daily_ic, ic_report, ic_summary
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


def test_baselines_are_opposite_and_use_the_past_return() -> None:
    persistence, reversal = baseline_signal(_forecasts(), "persistence"), baseline_signal(_forecasts(), "reversal")
    assert list(persistence) == [0.05, -0.02]
    assert list(reversal) == [-0.05, 0.02]


def test_unknown_kinds_name_the_config_key() -> None:
    with pytest.raises(ValueError, match="backtest.signal"):
        model_signal(_forecasts(), "median")
    with pytest.raises(ValueError, match="backtest.baseline"):
        baseline_signal(_forecasts(), "momentum")


def _panel(seed: int = 0, days: int = 30, names: int = 25) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=days), [f"S{i}" for i in range(names)]],
                                       names=["datetime", "instrument"])
    signal = pd.Series(rng.normal(size=len(index)), index=index)
    # Rounded labels make ties, which Spearman must rank as averages.
    label = pd.Series(np.round(0.3 * signal.to_numpy() + rng.normal(size=len(index)), 1), index=index)
    return signal, label


def test_daily_ic_agrees_with_qlib_calc_ic() -> None:
    signal, label = _panel()
    ours = daily_ic(signal, label)
    ic, ric = calc_ic(signal, label)
    np.testing.assert_allclose(ours["ic"], ic.loc[ours.index], rtol=1e-10)
    np.testing.assert_allclose(ours["rank_ic"], ric.loc[ours.index], rtol=1e-10)
    assert len(ours) == len(ic)


def test_ic_summary_is_mean_and_mean_over_std() -> None:
    signal, label = _panel(seed=1)
    daily = daily_ic(signal, label)
    summary = ic_summary(daily)
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
    daily = daily_ic(signal, label)
    assert first not in daily.index and len(daily) == 2
    assert np.isfinite(daily.to_numpy()).all()


def test_ic_report_scores_both_labels() -> None:
    frame = _forecasts()
    frame = pd.concat([frame.assign(datetime=frame["datetime"] + pd.Timedelta(days=d), instrument=frame["instrument"])
                       for d in range(3)] * 1, ignore_index=True)
    frame = pd.concat([frame, frame.assign(instrument=frame["instrument"] + "2",
                                           next_return=-frame["next_return"])], ignore_index=True)
    summaries, dailies = ic_report(baseline_signal(frame, "persistence"), frame)
    assert set(summaries) == {"next_return", "horizon_return"}
    assert summaries["next_return"]["days"] == 3 == len(dailies["horizon_return"])
