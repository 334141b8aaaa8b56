"""Realised labels of each decision, computed from the panel by (calendar date, instrument).

t is the decision date and t+k the k-th next date of the panel's common (trading) calendar. A price
on a suspended day (no row, zero/missing volume) counts as missing, so the label is NaN rather than a
return at a stale price.

- ``trade_return`` (the headline): ``deal(t+1) -> deal(t+2)`` with deal = close or open (the
  ``deal_price``). Qlib trades a signal of day t on day t+1 at the deal price, so this is the first
  day's return of the position the signal opens: what the portfolio actually earns from it.
- ``next_return``: ``close(t) -> close(t+1)`` (the forecast's first step; not tradable at close(t)).
- ``horizon_return``: ``close(t) -> close(t+H)`` (the whole forecast; overlaps H-1 days between
  consecutive decisions, hence Newey-West t-statistics).
"""

from __future__ import annotations

import pandas as pd

from kronos.backtest.markets import suspended

HEADLINE_LABEL = "trade_return"
LABELS = ("trade_return", "next_return", "horizon_return")


def describe(deal_price: str, horizon: int) -> dict[str, str]:
    """{label: what it measures}, for metrics.json and the report."""
    return {
        "trade_return": f"{deal_price}(t+1) -> {deal_price}(t+2): the return of the position Qlib opens at the "
                        f"next session's {deal_price} (headline)",
        "next_return": "close(t) -> close(t+1)",
        "horizon_return": f"close(t) -> close(t+{horizon})",
    }


def overlaps(horizon: int) -> dict[str, int]:
    """{label: consecutive decision dates one label spans} (the ``overlap`` of :func:`kronos.stats.mean_t`)."""
    return {"trade_return": 1, "next_return": 1, "horizon_return": max(int(horizon), 1)}


def label_table(close: pd.DataFrame, deal: pd.DataFrame, volume: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Every label on every (date, instrument) of wide price frames.

    Args:
        close, deal, volume: wide [calendar dates x instruments] (NaN where an instrument has no row);
            ``deal`` is the ``deal_price`` field (close or open).
        horizon: H of ``horizon_return``.

    Returns:
        DataFrame on (datetime, instrument) with the columns of :data:`LABELS`.
    """
    halt = suspended(close, volume)
    close_ok, deal_ok = close.mask(halt), deal.mask(halt)
    wide = {
        "trade_return": deal_ok.shift(-2) / deal_ok.shift(-1) - 1.0,
        "next_return": close_ok.shift(-1) / close_ok - 1.0,
        "horizon_return": close_ok.shift(-int(horizon)) / close_ok - 1.0,
    }
    long = {name: frame.stack(future_stack=True) for name, frame in wide.items()}
    out = pd.DataFrame(long)
    out.index = out.index.set_names(["datetime", "instrument"])
    return out


def panel_labels(panel, decisions: pd.DataFrame, *, deal_price: str, horizon: int) -> pd.DataFrame:
    """The labels of each decision row.

    Args:
        panel: ``Panel`` (raw prices per instrument on its own timestamps).
        decisions: frame with ``datetime`` and ``instrument`` (panel names) columns.
        deal_price: ``close`` or ``open``.
        horizon: H.

    Returns:
        DataFrame aligned with ``decisions``' rows (same index), columns :data:`LABELS`.
    """
    names = sorted(set(decisions["instrument"]))
    fields = {f: wide_field(panel, names, f) for f in {"close", deal_price, "volume"}}
    table = label_table(fields["close"], fields[deal_price], fields["volume"], horizon)
    keys = pd.MultiIndex.from_arrays([pd.DatetimeIndex(decisions["datetime"]), decisions["instrument"]])
    return table.reindex(keys).set_axis(decisions.index)


def wide_field(panel, names: list[str], field: str) -> pd.DataFrame:
    """One raw field of ``names`` as wide float64 [the panel's full calendar x names] (NaN where absent);
    the calendar is the whole panel's, so t+1 is the market's next day even for a subset of names."""
    col = panel.features.index(field)
    at = {n: i for i, n in enumerate(panel.instruments)}
    calendar = pd.DatetimeIndex(panel.calendar, name="datetime")
    series = {n: pd.Series(panel.values[at[n]][:, col].astype("float64"), index=pd.DatetimeIndex(panel.timestamps[at[n]]))
              for n in names}
    return pd.DataFrame(series, columns=names).reindex(calendar)
