"""Bad price rows: disagreement with the provider's $change, moves far beyond the market's limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos.backtest.price_checks import flag_rows, summary, touched

DAYS = pd.bdate_range("2024-01-01", periods=6, name="datetime")


def _frames():
    close = pd.DataFrame({"SH600000": [10, 10.5, 10.5, 5.2, 5.3, 5.3],       # day 3: an unadjusted 2:1 split
                          "SZ300750": [10, 11.5, 12, 12, 12.6, 12.0]}, index=DAYS)  # +15 %: fine for ChiNext
    change = close / close.shift(1) - 1
    change.loc[DAYS[4], "SZ300750"] = 0.20  # the provider says +20 %, prices say +5 %
    return close, change


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_change_mismatch_in_either_unit_and_beyond_limit_moves_are_flagged(scale: float) -> None:
    close, change = _frames()
    flags = flag_rows(close, change * scale, "cn", "region")
    got = {(str(d.date()), i): r for d, i, r in zip(flags["datetime"], flags["instrument"], flags["reason"])}
    assert got == {("2024-01-04", "SH600000"): "beyond_limit", ("2024-01-05", "SZ300750"): "change_mismatch"}
    row = flags[flags["reason"] == "change_mismatch"].iloc[0]
    assert row["return"] == pytest.approx(0.05) and row["change"] == pytest.approx(0.20)
    s = summary(flags)
    assert s["count"] == 2 and s["by_reason"] == {"beyond_limit": 1, "change_mismatch": 1}
    assert s["examples"][0]["instrument"] == "SH600000"


def test_no_limit_markets_only_check_the_change() -> None:
    close, change = _frames()
    flags = flag_rows(close, change, "none", "region")
    assert list(flags["reason"]) == ["change_mismatch"]
    assert flag_rows(close, None, "none", "region").empty


def test_touched_decisions_are_those_whose_trade_uses_a_flagged_row() -> None:
    close, change = _frames()
    flags = flag_rows(close, change, "cn", "region")
    decisions = pd.DataFrame({"datetime": list(DAYS[:4]), "instrument": ["SH600000"] * 4})
    # Flag on day 3: decisions on days 1, 2, 3 trade on/through it; day 0's trade ends on day 2.
    assert list(touched(flags, decisions, DAYS)) == [False, True, True, True]
    assert not touched(flags.iloc[0:0], decisions, DAYS).any()
    assert np.all(touched(flags, decisions.assign(instrument="X"), DAYS) == False)  # noqa: E712
