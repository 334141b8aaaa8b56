"""Decision windows from the lookback alone: no peeking at whether (or when) a stock trades next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.data.datamodule import KronosDataModule
from kronos.data.eval_windows import extend_calendar
from kronos.data.features import time_features
from kronos.data.panel import Panel
from kronos.data.synthetic import SyntheticSource
from tests.data.panel_source import PanelSource

L, H = 10, 3


def _market() -> tuple[Panel, np.ndarray]:
    """Three stocks on 60 business days: STOP stops trading after day 50, GAP has no row on day 52."""
    base = SyntheticSource(n_instruments=3, n_steps=60, seed=5).load()
    cal = base.timestamps[0]
    stop = np.arange(51)
    gap = np.delete(np.arange(60), 52)
    panel = Panel(["FULL", "STOP", "GAP"], [cal, cal[stop], cal[gap]],
                  [base.values[0], base.values[1][stop], base.values[2][gap]])
    return panel, cal


def _batches(panel: Panel, split_from: int):
    cal = panel.calendar
    dm = KronosDataModule(PanelSource(panel), L, H, batch_size=8,
                          splits={"train": [str(pd.Timestamp(cal[0]).date()), str(pd.Timestamp(cal[split_from - 1]).date())],
                                  "test": [str(pd.Timestamp(cal[split_from]).date()), None]})
    batches = list(dm.eval_dataloader("test", batch_size=5))
    flat = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in ("datetime", "close", "y_stamp", "stamp")}
    flat["instrument"] = [i for b in batches for i in b["instrument"]]
    return dm, batches, flat


def test_a_stock_about_to_stop_keeps_its_signal_and_its_future_is_missing() -> None:
    panel, cal = _market()
    _, _, flat = _batches(panel, 40)
    last_stop = pd.Timestamp(cal[50]).value
    rows = [k for k, (i, d) in enumerate(zip(flat["instrument"], flat["datetime"])) if i == "STOP"]
    assert max(flat["datetime"][rows]) == last_stop  # its last trading day is still a decision
    k = rows[-1]
    assert np.isnan(flat["close"][k, L:]).all()           # nothing after it: missing, not dropped
    assert np.isfinite(flat["close"][k, :L]).all()
    # Old behaviour (windows needing H future rows) dropped the last H decisions of every stock.
    full = [k for k, i in enumerate(flat["instrument"]) if i == "FULL"]
    assert max(flat["datetime"][full]) == pd.Timestamp(cal[-1]).value


def test_forecast_stamps_come_from_the_calendar_not_the_stocks_rows() -> None:
    panel, cal = _market()
    _, batches, flat = _batches(panel, 40)
    k = next(k for k, (i, d) in enumerate(zip(flat["instrument"], flat["datetime"]))
             if i == "GAP" and d == pd.Timestamp(cal[50]).value)
    # GAP has no row on day 52: its y_stamp still covers days 51, 52, 53 of the market.
    np.testing.assert_array_equal(flat["y_stamp"][k], time_features(cal[51:54]))
    np.testing.assert_array_equal(flat["stamp"][k, L:], flat["y_stamp"][k])
    gap_close = panel.values[2][:, 3]
    assert flat["close"][k, L] == pytest.approx(gap_close[51]) and np.isnan(flat["close"][k, L + 1])
    assert flat["close"][k, L + 2] == pytest.approx(gap_close[52])  # GAP's row for day 53
    # The lookback is the stock's own last L rows, normalised with their own statistics.
    b = batches[0]
    assert b["x"].shape[1:] == (L, 6) and b["y_stamp"].shape[1:] == (H, 5) and b["close"].shape[1] == L + H
    assert b["stamp"].shape[1:] == (L + H, 5)


def test_decisions_near_the_end_get_stamps_past_the_data() -> None:
    panel, cal = _market()
    _, _, flat = _batches(panel, 40)
    k = int(np.flatnonzero(flat["datetime"] == pd.Timestamp(cal[-1]).value)[0])
    expected = pd.bdate_range(pd.Timestamp(cal[-1]) + pd.offsets.BDay(1), periods=H)
    np.testing.assert_array_equal(flat["y_stamp"][k], time_features(expected))


def test_future_rows_never_change_the_decision_inputs() -> None:
    """Perturbing everything after a decision changes neither x nor mean/std of that decision."""
    panel, cal = _market()
    _, batches, _ = _batches(panel, 40)
    values = [v.copy() for v in panel.values]
    values[0][45:] *= 3.0
    other = Panel(panel.instruments, panel.timestamps, values)
    _, batches2, _ = _batches(other, 40)
    b1, b2 = batches[0], batches2[0]
    assert b1["datetime"][0] < pd.Timestamp(cal[45]).value - 3 * 86400e9
    np.testing.assert_array_equal(b1["x"].numpy(), b2["x"].numpy())
    np.testing.assert_array_equal(b1["mean"].numpy(), b2["mean"].numpy())


def test_extend_calendar_by_the_datas_frequency() -> None:
    days = pd.bdate_range("2024-01-01", periods=5).to_numpy()  # ends Friday 2024-01-05
    out = pd.DatetimeIndex(extend_calendar(days, 2))
    assert list(out[-2:]) == [pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-09")]
    hours = pd.date_range("2024-01-06 22:00", periods=4, freq="h").to_numpy()  # crypto: weekends trade
    assert pd.DatetimeIndex(extend_calendar(hours, 2))[-1] == pd.Timestamp("2024-01-07 03:00")
    daily_7 = pd.date_range("2024-01-01", periods=10, freq="D").to_numpy()
    assert pd.DatetimeIndex(extend_calendar(daily_7, 1))[-1] == pd.Timestamp("2024-01-11")
