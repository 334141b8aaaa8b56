"""Labels aligned with trading (hand-computed), board-aware price limits and suspensions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.backtest.labels import label_table, overlaps, panel_labels
from kronos.backtest.markets import cn_limit, limits, resolve_region, suspended, tradability
from kronos.data.panel import Panel

DAYS = pd.bdate_range("2024-01-01", periods=6, name="datetime")


def _wide(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(values, index=DAYS, dtype=float)


CLOSE = _wide({"A": [10, 11, 12, 15, 14, 16]})
OPEN = _wide({"A": [9, 10.5, 13, 14, 15, 15.5]})
VOLUME = _wide({"A": [1, 1, 1, 1, 1, 1]})


def test_trade_return_with_close_is_close_t1_to_close_t2() -> None:
    table = label_table(CLOSE, CLOSE, VOLUME, horizon=3)
    row = table.loc[(DAYS[0], "A")]
    assert row["trade_return"] == pytest.approx(12 / 11 - 1)   # close(t+1) -> close(t+2)
    assert row["next_return"] == pytest.approx(11 / 10 - 1)    # close(t) -> close(t+1)
    assert row["horizon_return"] == pytest.approx(15 / 10 - 1)  # close(t) -> close(t+3)
    assert table.loc[(DAYS[1], "A"), "trade_return"] == pytest.approx(15 / 12 - 1)
    # Past the data's end the labels are missing, never invented.
    assert np.isnan(table.loc[(DAYS[4], "A"), "trade_return"]) and np.isnan(table.loc[(DAYS[5], "A"), "next_return"])
    assert np.isnan(table.loc[(DAYS[3], "A"), "horizon_return"])
    assert overlaps(3) == {"trade_return": 1, "next_return": 1, "horizon_return": 3}


def test_trade_return_with_open_is_open_t1_to_open_t2() -> None:
    table = label_table(CLOSE, OPEN, VOLUME, horizon=2)
    assert table.loc[(DAYS[0], "A"), "trade_return"] == pytest.approx(13 / 10.5 - 1)  # open(t+1) -> open(t+2)
    assert table.loc[(DAYS[2], "A"), "trade_return"] == pytest.approx(15 / 14 - 1)
    assert table.loc[(DAYS[0], "A"), "next_return"] == pytest.approx(11 / 10 - 1)   # still close-to-close


def test_a_suspended_day_gives_a_missing_label_not_a_stale_return() -> None:
    volume = VOLUME.copy()
    volume.iloc[2, 0] = 0.0  # suspended on day 2 (Qlib data forward-fills its price)
    table = label_table(CLOSE, CLOSE, volume, horizon=2)
    assert np.isnan(table.loc[(DAYS[0], "A"), "trade_return"])   # uses day 2
    assert np.isnan(table.loc[(DAYS[1], "A"), "trade_return"])   # buys on day 2: impossible
    assert table.loc[(DAYS[2], "A"), "trade_return"] == pytest.approx(14 / 15 - 1)


def test_panel_labels_use_the_markets_calendar_not_the_stocks_own_rows() -> None:
    """B has no row on day 2 (suspended): its t+1 is the market's next day, so labels touching day 2 are NaN
    instead of silently spanning two days."""
    t = DAYS.to_numpy()
    a = np.tile(np.arange(1, 7, dtype=np.float32)[:, None], (1, 6))
    keep = np.array([0, 1, 3, 4, 5])
    b = a[keep] * 2
    panel = Panel(["A", "B"], [t, t[keep]], [a, b])
    decisions = pd.DataFrame({"datetime": [DAYS[0], DAYS[0], DAYS[3]], "instrument": ["A", "B", "B"]})
    out = panel_labels(panel, decisions, deal_price="close", horizon=2)
    assert out.loc[0, "trade_return"] == pytest.approx(3 / 2 - 1)
    assert np.isnan(out.loc[1, "trade_return"]) and np.isnan(out.loc[1, "horizon_return"])
    assert out.loc[2, "trade_return"] == pytest.approx(6 / 5 - 1) and out.loc[2, "next_return"] == pytest.approx(5 / 4 - 1)


RULE_DATES = pd.DatetimeIndex(["2019-07-19", "2020-08-21", "2020-08-24", "2024-01-02"])


@pytest.mark.parametrize("code,limit", [
    ("SZ300750", [0.10, 0.10, 0.20, 0.20]), ("SZ301001", [0.10, 0.10, 0.20, 0.20]),
    ("SZ302132", [0.10, 0.10, 0.20, 0.20]), ("SH688981", [0.20] * 4), ("SH689009", [0.20] * 4),
    ("BJ830799", [0.30] * 4), ("BJ430047", [0.30] * 4), ("BJ920002", [0.30] * 4),
    ("SH600000", [0.10] * 4), ("SZ000001", [0.10] * 4), ("SZ002594", [0.10] * 4), ("SH601318", [0.10] * 4),
    ("SZ303001", [0.10] * 4),
])
def test_board_and_date_aware_cn_limits(code: str, limit: list[float]) -> None:
    # ChiNext: 10 % until the 2020-08-24 reform, 20 % from that day; STAR 20 %; Beijing 30 %; main board 10 %.
    assert list(cn_limit(code, RULE_DATES)) == limit


def test_limits_by_region_and_override() -> None:
    names = ["SZ300750", "SH600000"]
    dates = pd.DatetimeIndex(["2020-01-02", "2021-01-04"])
    cn = limits(names, dates, "cn", "region")
    assert cn.loc["2020-01-02"].tolist() == pytest.approx([0.095, 0.095])
    assert cn.loc["2021-01-04"].tolist() == pytest.approx([0.195, 0.095])
    assert np.isinf(limits(names, dates, "us", "region")).all().all()
    assert np.isinf(limits(names, dates, "none", "region")).all().all()
    assert (limits(names, dates, "cn", 0.05) == 0.05).all().all()
    assert np.isinf(limits(names, dates, "cn", None)).all().all()
    assert resolve_region("auto", "cn") == "cn" and resolve_region("auto", None) == "none"
    assert resolve_region("us", "cn") == "us"


def test_tradability_blocks_limit_moves_by_board_and_suspensions() -> None:
    # Day 1: both +15 %. A main-board stock cannot move 15 % (blocked as limit-up at 10 %); a ChiNext one
    # can, so it is buyable. Day 2: both -12 %: the main-board one is limit-down, the ChiNext one is not.
    close = _wide({"SH600000": [10, 11.5, 10.12, 10, 10, 10], "SZ300750": [10, 11.5, 10.12, 10, 10, 10]})
    volume = _wide({"SH600000": [1, 1, 1, 0, 1, 1], "SZ300750": [1, 1, 1, 1, np.nan, 1]})
    rules = tradability(close, volume, "cn", "region")
    buy, sell = rules.buy_blocked, rules.sell_blocked
    assert rules.limit_up.loc[DAYS[1], "SH600000"] and not rules.limit_up.loc[DAYS[1], "SZ300750"]
    assert buy.loc[DAYS[1], "SH600000"] and not buy.loc[DAYS[1], "SZ300750"]
    assert sell.loc[DAYS[2], "SH600000"] and not sell.loc[DAYS[2], "SZ300750"]
    assert not sell.loc[DAYS[1], "SH600000"]
    # Zero or missing volume: neither buy nor sell, whatever the limit rule.
    for rule in ("region", None, 0.5):
        b, s, _, halt = tradability(close, volume, "cn", rule)
        assert halt.loc[DAYS[3], "SH600000"] and halt.loc[DAYS[4], "SZ300750"]
        assert b.loc[DAYS[3], "SH600000"] and s.loc[DAYS[3], "SH600000"]
        assert b.loc[DAYS[4], "SZ300750"] and s.loc[DAYS[4], "SZ300750"]
        assert not b.loc[DAYS[5]].any()
    # Outside cn no price limits apply.
    b = tradability(close, volume, "none", "region").buy_blocked
    assert not b.loc[DAYS[1]].any()


def test_data_without_any_volume_is_judged_by_price() -> None:
    close = _wide({"X": [1, 2, np.nan, 3, 4, 5]})
    volume = _wide({"X": [0, 0, 0, 0, 0, 0]})  # a CSV without a volume column
    halt = suspended(close, volume)
    assert list(halt["X"]) == [False, False, True, False, False, False]


def test_a_label_whose_entry_is_at_limit_up_leaves_the_tradable_ic() -> None:
    """SH600001 closes day 2 at +10 % (limit-up): the decision of day 1 (which buys at day 2's close) has
    its trade_return masked; the ChiNext name's +10 % in 2024 is inside its 20 % limit; with deal=open
    the limit is measured from the open against the previous close."""
    from kronos.backtest.labels import entry_at_limit_up

    t = DAYS.to_numpy()
    up = np.array([10, 10, 11, 11, 11, 11], dtype=np.float32)
    flat_open = np.array([10, 10, 10, 11, 11, 11], dtype=np.float32)  # day 2 opens flat, closes at limit-up
    def candles(open_, close):
        return np.stack([open_, close, open_, close, np.ones(6), np.ones(6)], axis=1).astype(np.float32)
    panel = Panel(["SH600001", "SZ300001"], [t, t], [candles(flat_open, up), candles(flat_open, up)])
    decisions = pd.DataFrame({"datetime": [DAYS[1], DAYS[1], DAYS[2]], "instrument": ["SH600001", "SZ300001", "SH600001"]})
    at_close = entry_at_limit_up(panel, decisions, deal_price="close", region="cn", threshold="region")
    assert at_close.tolist() == [True, False, False]
    at_open = entry_at_limit_up(panel, decisions, deal_price="open", region="cn", threshold="region")
    assert at_open.tolist() == [False, False, False]  # opened flat on day 2: buyable at the open
    assert not entry_at_limit_up(panel, decisions, deal_price="close", region="none", threshold="region").any()


def test_open_at_limit_up_blocks_buying_with_deal_price_open() -> None:
    close = _wide({"SH600000": [10, 10, 10, 10, 10, 10]})
    opened = _wide({"SH600000": [10, 10, 11, 10, 10, 10]})  # opens day 2 at +10 %, closes flat
    volume = _wide({"SH600000": [1, 1, 1, 1, 1, 1]})
    buy_close = tradability(close, volume, "cn", "region").buy_blocked
    buy_open = tradability(close, volume, "cn", "region", deal=opened).buy_blocked
    assert not buy_close.loc[DAYS[2], "SH600000"] and buy_open.loc[DAYS[2], "SH600000"]


@pytest.mark.parametrize("spelling, canonical", [
    ("SH600000", "SH600000"), ("sh600000", "SH600000"), ("600000.SH", "SH600000"), ("600000.SS", "SH600000"),
    ("600000.XSHG", "SH600000"), ("SHSE.600000", "SH600000"), ("sh.600000", "SH600000"), ("600000", "SH600000"),
    ("600000_SH", "SH600000"), ("300750.SZ", "SZ300750"), ("sz300750", "SZ300750"), ("300750.XSHE", "SZ300750"),
    ("SZ_300750", "SZ300750"), ("300750", "SZ300750"), ("688981.SH", "SH688981"), ("688981.XSHG", "SH688981"),
    ("830799.BJ", "BJ830799"), ("bj830799", "BJ830799"), ("920118", "BJ920118"), ("AAPL", "AAPL"),
])
def test_every_common_spelling_of_a_code_gets_its_board_rule(spelling: str, canonical: str) -> None:
    """Issue 27: market rules read every common spelling of an instrument code (and its Qlib symbol)."""
    from kronos.backtest.markets import cn_code, cn_limit
    from kronos.data.qlib_provider import qlib_symbol

    dates = pd.DatetimeIndex(["2019-01-02", "2021-01-04"])
    assert cn_code(spelling) == canonical
    expected = cn_limit(canonical, dates)
    np.testing.assert_array_equal(cn_limit(spelling, dates), expected)
    np.testing.assert_array_equal(cn_limit(qlib_symbol(spelling), dates), expected)
