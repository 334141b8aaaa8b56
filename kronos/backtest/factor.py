"""Factor analysis of a cross-sectional signal: quantile returns, spread, monotonicity, IC decay, turnover.

A compact pandas/numpy implementation of the alphalens tear sheet's core numbers (alphalens-reloaded
was not used: it wants forward prices it computes itself, plots through its own tear sheets and drags
in dependencies; our labels, calendar and t-statistics are already defined elsewhere and are reused):

- each date, the names with a signal (the decision-time universe: what is known when the groups are
  formed) are split into ``quantiles`` equal groups by the signal's rank (1 = lowest); a group's daily
  return is the equal-weighted mean label of its names, where a name whose label is missing (suspended
  at the entry or the exit, or masked because its entry was at limit-up) earns 0 that day: a position that
  cannot be opened stays in cash, one that cannot be closed is marked at its last traded price (see
  :func:`held_label`). Forming the groups only from the names that turned out to have a label would use
  the future (which names get suspended) at decision time;
- ``quantile_returns``: the mean over days of each group's daily return, bottom to top, each with a t
  (kronos.stats.mean_t: plain for one-day labels, Hansen-Hodrick for labels spanning ``overlap`` dates);
- ``spread``: top minus bottom group per day, its mean, t and p;
- ``monotonicity``: Spearman correlation of the group number with the group's mean return (+1: rising);
- ``ic_decay``: mean daily RankIC of the signal of t with the label of t + k - 1, k = 1..lags;
- ``autocorrelation``: mean over dates of the Spearman correlation of the signal with its previous
  date's value (names present on both);
- ``turnover``: mean over dates of the share of the top group's names that were not in it the date before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos import stats


def quantile_groups(signal: pd.Series, quantiles: int) -> pd.Series:
    """Per date, the group (1..``quantiles``, 1 = lowest) of each name by its signal's rank.

    Ties are broken by order (each group gets n/quantiles names, +-1); dates with fewer names than
    groups get none (NaN).
    """
    valid = signal.dropna()
    by = valid.groupby(level="datetime")
    rank = by.rank(method="first")
    count = by.transform("size")
    group = np.floor((rank - 1.0) * quantiles / count) + 1.0
    return group.where(count >= quantiles).reindex(signal.index).rename("group")


def held_label(signal: pd.Series, label: pd.Series) -> pd.Series:
    """The label of every name in the decision-time universe (rows with a finite signal), as a position earns it.

    A missing label counts 0 on a date where some other name has a label (a position that cannot be opened
    stays in cash; one whose exit is suspended is marked at its last traded price); on a date where no name
    has a label (the future beyond the data) it stays NaN and the date is left out.

    Args:
        signal, label: float Series on the same (datetime, instrument) MultiIndex.

    Returns:
        Series on the rows of ``signal`` that are finite.
    """
    frame = pd.DataFrame({"signal": signal, "label": label}).replace([np.inf, -np.inf], np.nan)
    frame = frame[frame["signal"].notna()]
    known = frame["label"].notna()
    date_has_labels = known.groupby(level="datetime").transform("any")
    return frame["label"].where(known | ~date_has_labels, 0.0).rename("label")


def held_at_zero(signal: pd.Series, label: pd.Series) -> int:
    """How many (date, name) rows of the decision-time universe :func:`held_label` counted at 0 (label missing)."""
    held = held_label(signal, label)
    return int((held.notna() & label.reindex(held.index).isna()).sum())


def quantile_daily(signal: pd.Series, label: pd.Series, quantiles: int) -> pd.DataFrame:
    """Daily mean label of each group: [dates x 1..quantiles]; groups formed from the decision-time universe
    (every name with a finite signal), labels as :func:`held_label` (a missing one earns 0)."""
    held = held_label(signal, label)
    frame = pd.DataFrame({"label": held, "group": quantile_groups(signal.reindex(held.index), quantiles)})
    frame = frame.dropna()
    daily = frame.groupby([frame.index.get_level_values("datetime"), "group"])["label"].mean().unstack("group")
    daily.columns = [int(c) for c in daily.columns]
    return daily.reindex(columns=range(1, quantiles + 1)).rename_axis("datetime")


def spread_series(daily: pd.DataFrame) -> pd.Series:
    """Top minus bottom group's daily return (dates where both exist)."""
    return (daily.iloc[:, -1] - daily.iloc[:, 0]).dropna().rename("spread")


def top_turnover(signal: pd.Series, quantiles: int) -> pd.Series:
    """Per date, the share of the top group's names that were not in it on the previous date."""
    group = quantile_groups(signal, quantiles).dropna()
    top = group[group == quantiles]
    names = {d: set(s.index.get_level_values("instrument")) for d, s in top.groupby(level="datetime")}
    dates = sorted(names)
    return pd.Series([len(names[b] - names[a]) / len(names[b]) for a, b in zip(dates[:-1], dates[1:])],
                     index=pd.DatetimeIndex(dates[1:], name="datetime"), dtype=float)


def autocorrelation(signal: pd.Series) -> pd.Series:
    """Per date, the Spearman correlation of the signal with its value on the previous date."""
    wide = signal.unstack("instrument").sort_index()
    ranks_now, ranks_before = wide.iloc[1:], wide.shift(1).iloc[1:]
    out = {}
    for date in ranks_now.index:
        pair = pd.DataFrame({"a": ranks_now.loc[date], "b": ranks_before.loc[date]}).dropna()
        if len(pair) > 2 and pair["a"].nunique() > 1 and pair["b"].nunique() > 1:
            out[date] = pair["a"].corr(pair["b"], method="spearman")
    return pd.Series(out, dtype=float).rename_axis("datetime")


def ic_decay(signal: pd.Series, label: pd.Series, lags: int) -> list[float]:
    """Mean daily RankIC of the signal of date t with the label of the (k-1)-th next date, k = 1..lags."""
    wide = label.unstack("instrument").sort_index()
    out = []
    for k in range(1, lags + 1):
        ahead = wide.shift(-(k - 1)).stack(future_stack=True).reindex(signal.index)
        frame = pd.DataFrame({"signal": signal, "label": ahead})
        daily = stats.daily_ic(frame, "signal", "label")
        out.append(float(daily.mean()) if len(daily) else float("nan"))
    return out


def factor_report(signal: pd.Series, label: pd.Series, *, quantiles: int = 5, overlap: int = 1,
                  lags: int = 1) -> tuple[dict[str, Any], pd.DataFrame]:
    """Every number of the module docstring for one signal and one label.

    Args:
        signal, label: float Series on the same (datetime, instrument) MultiIndex.
        quantiles: groups per date.
        overlap: consecutive dates one label spans (1: plain t; more: Hansen-Hodrick).
        lags: how many lags of IC decay (the horizon H).

    Returns:
        (JSON-able dict: ``quantile_returns``, ``quantile_t``, ``spread`` {mean, t}, ``monotonicity``,
        ``ic_decay``, ``autocorrelation``, ``turnover``, ``quantiles``, ``days``, ``labels_held_at_zero``
        (grouped names whose missing label counted 0, :func:`held_label`); the daily group returns).
    """
    daily = quantile_daily(signal, label, quantiles)
    means = daily.mean()
    tstats = [stats.mean_t(daily[c].dropna().to_numpy(), overlap=overlap) for c in daily.columns]
    spread = stats.mean_t(spread_series(daily).to_numpy(), overlap=overlap)
    ranked = means.dropna()
    mono = (float(pd.Series(ranked.index, dtype=float).corr(pd.Series(ranked.to_numpy()), method="spearman"))
            if len(ranked) > 2 else float("nan"))
    summary = {
        "quantiles": int(quantiles),
        "quantile_returns": [float(v) for v in means.to_numpy()],
        "quantile_t": [float(t.t) for t in tstats],
        "spread": {"mean": float(spread.mean), "t": float(spread.t), "p": float(spread.p)},
        "monotonicity": mono,
        "ic_decay": ic_decay(signal, label, lags),
        "autocorrelation": float(autocorrelation(signal).mean()),
        "turnover": float(top_turnover(signal, quantiles).mean()),
        "days": int(len(daily)),
        "labels_held_at_zero": held_at_zero(signal, label),
    }
    return summary, daily
