"""Money numbers of a daily return series: annualisation, alpha/beta, costs, break-even, long-short.

**One annualisation** for every money number of the backtest (:func:`annualized`; the portfolio summary,
the long-short portfolio, the cost grid and the alpha all use it): returns accumulate by summation
(Qlib's convention, :data:`ANNUALISATION`): an annualised return is the mean daily return times the
bars per year, not compounded; an information ratio the mean over the standard deviation (ddof 1) times
the square root of the bars; a drawdown is measured on the summed curve. These are exactly the numbers of
Qlib's ``risk_analysis`` (mode ``sum``; a test keeps them equal). The bars per year come from the data's
own calendar (:func:`bars_per_year`), not a constant.

Costs are one-way, in basis points of the value traded: a day's cost is its turnover (value bought plus
value sold, over the account) times the rate, so the break-even cost (the one-way rate at which the
mean excess return is zero) is mean gross excess over mean turnover.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from kronos import stats
from kronos.backtest.factor import held_label, quantile_daily, quantile_groups, spread_series

COST_GRID_BPS = (0, 5, 10, 20, 50)
# What every annualised money number of the report is, in words (the report and metrics.json say it).
ANNUALISATION = ("summed: mean daily return x bars per year (Qlib's convention; not compounded); "
                 "information ratio = mean / std x sqrt(bars per year)")
# Trading days a year of a market, for calendars too short to measure it (holidays bias a few months).
REGION_BARS = {"cn": 242.0, "us": 252.0}
FALLBACK_BARS = 252.0
MIN_BARS_TO_MEASURE = 20


def bars_per_year(calendar: pd.DatetimeIndex, region: str = "none") -> float:
    """Bars per year measured from a calendar: (bars - 1) over the span in years of 365.25 days.

    A calendar spanning less than a year uses its region's trading days (:data:`REGION_BARS`) when the
    region is known (cn, us), else its measured rate; fewer than 20 bars give :data:`FALLBACK_BARS`
    unless the region is known.
    """
    calendar = pd.DatetimeIndex(calendar).unique().sort_values()
    span = (calendar[-1] - calendar[0]).total_seconds() / (365.25 * 86400) if len(calendar) else 0.0
    if span < 1.0 and region in REGION_BARS:
        return REGION_BARS[region]
    if len(calendar) < MIN_BARS_TO_MEASURE or span <= 0:
        return FALLBACK_BARS
    return float((len(calendar) - 1) / span)


def annualized(returns: pd.Series, bars: float) -> dict[str, float]:
    """The one annualisation of a daily return series (NaN dropped), summed as Qlib sums it.

    Returns:
        ``mean`` and ``std`` (ddof 1) of the daily returns, ``annualized_return`` (mean x bars),
        ``information_ratio`` (mean / std x sqrt(bars)), ``max_drawdown`` (the deepest fall of the summed
        curve from its running peak, <= 0) and ``t`` (plain t of the mean: daily portfolio returns do not
        overlap). Equal to Qlib's ``risk_analysis(returns, N=bars, mode="sum")`` plus ``t``.
    """
    r = pd.Series(returns, dtype=float).dropna()
    sd = float(r.std()) if len(r) > 1 else float("nan")
    curve = r.cumsum()
    return {"mean": float(r.mean()) if len(r) else float("nan"), "std": sd,
            "annualized_return": float(r.mean() * bars) if len(r) else float("nan"),
            "information_ratio": float(r.mean() / sd * np.sqrt(bars)) if len(r) > 1 and sd > 0 else float("nan"),
            "max_drawdown": float((curve - curve.cummax()).min()) if len(r) else float("nan"),
            "t": float(stats.mean_t(r.to_numpy(), overlap=1).t)}


def alpha_beta(returns: pd.Series, benchmark: pd.Series, bars: float) -> dict[str, float]:
    """OLS of the daily returns on the benchmark's: ``annualized`` alpha (intercept x bars, summed as
    :func:`annualized`), its ``t`` (the intercept over its OLS standard error), its two-sided ``p`` (Student t,
    n - 2 degrees of freedom) and ``beta``."""
    frame = pd.DataFrame({"r": returns, "m": benchmark}).dropna()
    n = len(frame)
    nan = float("nan")
    if n < 3 or frame["m"].var() <= 0:
        return {"annualized": nan, "t": nan, "p": nan, "beta": nan}
    x = np.column_stack([np.ones(n), frame["m"].to_numpy()])
    coef, *_ = np.linalg.lstsq(x, frame["r"].to_numpy(), rcond=None)
    resid = frame["r"].to_numpy() - x @ coef
    sigma2 = resid @ resid / (n - 2)
    se = np.sqrt(sigma2 * np.linalg.inv(x.T @ x)[0, 0])
    t = float(coef[0] / se) if se > 0 else nan
    p = float(2.0 * sps.t.sf(abs(t), n - 2)) if np.isfinite(t) else nan
    return {"annualized": float(coef[0] * bars), "t": t, "p": p, "beta": float(coef[1])}


def cost_grid(gross: pd.Series, turnover: pd.Series, bars: float,
              grid_bps: tuple[int, ...] = COST_GRID_BPS) -> dict[str, float]:
    """{"<bps>": annualised return after a one-way cost of bps on each day's turnover}."""
    frame = pd.DataFrame({"g": gross, "to": turnover}).dropna()
    return {str(c): float((frame["g"] - frame["to"] * c / 1e4).mean() * bars) for c in grid_bps}


def break_even_bps(gross: pd.Series, turnover: pd.Series) -> float:
    """One-way cost (bps) at which the mean return after cost is zero; negative when the return is
    already negative before cost, NaN without turnover."""
    frame = pd.DataFrame({"g": gross, "to": turnover}).dropna()
    mean_to = frame["to"].mean()
    return float(frame["g"].mean() / mean_to * 1e4) if mean_to > 0 else float("nan")


def leg_turnover(members: pd.Series) -> pd.Series:
    """Per date, sum over names of |w_t - w_(t-1)| of an equal-weighted leg (weights 1/n of its names).

    Args:
        members: bool Series on (datetime, instrument), True where the name is in the leg.
    """
    weights = members.astype(float).unstack("instrument").fillna(0.0).sort_index()
    weights = weights.div(weights.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0.0)
    return weights.diff().fillna(weights).abs().sum(axis=1)


def long_short(signal: pd.Series, label: pd.Series, *, quantiles: int, cost: float,
               bars: float) -> tuple[dict[str, Any], pd.Series]:
    """The long-short quantile portfolio, computed in pandas from the signal and the realised label.

    Each date: long the top group, short the bottom group (kronos.backtest.factor.quantile_groups of the
    decision-time universe: every name with a signal that day), equal-weighted, dollar-neutral (one unit
    of capital a leg); the day's return is the long leg's mean label minus the short leg's
    (kronos.backtest.factor.spread_series of quantile_daily: the factor report's spread), where a name
    whose label is missing (suspended, masked at limit-up) earns 0 (kronos.backtest.factor.held_label);
    costs are ``cost`` (one way, a fraction) on the value each leg trades to rebalance.

    Returns:
        (:func:`annualized` after cost plus ``before_cost`` (the same before cost), ``turnover`` (mean daily,
        both legs), ``cost``, ``costs`` (:func:`cost_grid`), ``break_even_cost_bps``, ``days``; the daily
        return after cost).
    """
    gross = spread_series(quantile_daily(signal, label, quantiles))
    universe = signal.reindex(held_label(signal, label).index)
    group = quantile_groups(universe, quantiles)
    legs = {name: group == g for name, g in (("long", quantiles), ("short", 1))}
    turnover = (leg_turnover(legs["long"]) + leg_turnover(legs["short"])).reindex(gross.index)
    net = gross - turnover * cost
    return {**annualized(net, bars), "before_cost": annualized(gross, bars),
            "turnover": float(turnover.mean()), "cost": float(cost), "costs": cost_grid(gross, turnover, bars),
            "break_even_cost_bps": break_even_bps(gross, turnover), "days": int(len(gross))}, net
