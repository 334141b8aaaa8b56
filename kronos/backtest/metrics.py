"""Information coefficients of backtest signals and their significance (formulas in :mod:`kronos.stats`).

IC = per decision date, the cross-sectional Pearson correlation of a signal with a realised label;
RankIC = the same on within-date ranks (Spearman). Their daily series are summarised by the mean, the
information ratio (mean / std) and a t-statistic of the mean from :func:`kronos.stats.mean_t`: the
classical t for labels that do not overlap from one decision date to the next, Hansen–Hodrick (with its
small-sample degrees of freedom) for multi-day labels, whose daily ICs are autocorrelated because the
H-day label of consecutive dates shares H - 1 days of returns. (Before, multi-day labels used Newey–West
with lag H - 1, which rejects a true null about 13 % of the time at a nominal 5 % for H = 5 over 140 days.)
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from kronos import stats

# Two-sided 5 % critical value of the normal distribution: the report's "significant".
T_CRITICAL = 1.96


def daily_ic(signal: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per decision date, Pearson (IC) and Spearman (RankIC) correlation across instruments.

    Args:
        signal, label: float Series on the same (datetime, instrument) MultiIndex.

    Returns:
        DataFrame indexed by datetime with columns ``ic`` and ``rank_ic``; dates with fewer than two
        valid instruments or a constant cross-section are dropped (their correlation is undefined).
    """
    frame = pd.DataFrame({"signal": signal, "label": label})
    out = pd.DataFrame({"ic": stats.daily_ic(frame, "signal", "label", method="pearson"),
                        "rank_ic": stats.daily_ic(frame, "signal", "label", method="spearman")})
    return out.dropna()


def ic_summary(daily: pd.DataFrame, overlap: int = 1) -> dict[str, float]:
    """Means, information ratios (mean / std, ddof=1, not annualised), t-statistics, p-values and days.

    Args:
        daily: output of :func:`daily_ic`.
        overlap: how many decision dates one label spans (1 = no overlap), for :func:`kronos.stats.mean_t`.
    """
    ic = stats.ic_summary(daily["ic"], overlap)
    rank = stats.ic_summary(daily["rank_ic"], overlap)
    return {"ic": ic["ic"], "icir": ic["icir"], "ic_t": ic["t"], "ic_p": ic["p"],
            "rank_ic": rank["ic"], "rank_icir": rank["icir"], "rank_ic_t": rank["t"], "rank_ic_p": rank["p"],
            "days": int(len(daily))}


def ic_report(signal: pd.Series, labels: pd.DataFrame, overlaps: Mapping[str, int],
              ) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """IC summaries and daily series of ``signal`` against every label column.

    Args:
        signal: Series on (datetime, instrument).
        labels: DataFrame on the same index, one column per label.
        overlaps: {label: how many decision dates one label spans} (1 = no overlap).

    Returns:
        ({label: ic_summary}, {label: daily_ic frame}).
    """
    summaries, dailies = {}, {}
    for label in labels.columns:
        daily = daily_ic(signal, labels[label])
        summaries[label] = ic_summary(daily, overlap=int(overlaps.get(label, 1)))
        dailies[label] = daily
    return summaries, dailies


def compare(model: pd.DataFrame, baseline: pd.DataFrame, overlap: int = 1) -> dict[str, float]:
    """The model's daily RankIC minus a baseline's on the days both have, and its t-statistic.

    Args:
        model, baseline: :func:`daily_ic` frames of the same label.
        overlap: how many decision dates the label spans (for :func:`kronos.stats.mean_t`).

    Returns:
        ``rank_ic_diff`` (mean daily difference), ``t``, ``p`` (two-sided) and ``days``.
    """
    diff = (model["rank_ic"] - baseline["rank_ic"]).dropna()
    stat = stats.mean_t(diff, overlap)
    return {"rank_ic_diff": float(diff.mean()) if len(diff) else float("nan"),
            "t": stat.t, "p": stat.p, "days": int(len(diff))}


def verdict(model_name: str, baseline_name: str, label: str, result: Mapping[str, float],
            money: tuple[Mapping[str, float], Mapping[str, float]] | None = None) -> str:
    """One sentence saying whether ``model_name`` beats ``baseline_name`` significantly on ``label``.

    ``money``: (model, baseline) rows of kronos.backtest.verdict.money_row. With it, "beats" also needs
    the money: the model's long-short spread significantly positive, its top-k alpha before cost
    positive, and both above the baseline's; a better ranking without them is said as such.
    """
    diff, t, days = result["rank_ic_diff"], result["t"], result["days"]
    if not np.isfinite(t):
        return f"Too few days ({days}) to compare {model_name} with {baseline_name} on {label}."
    ranking = (f"mean daily RankIC difference {diff:+.4f}, t = {t:.2f} over {days} days "
               f"(significant when |t| > {T_CRITICAL})")
    if t < -T_CRITICAL:
        return f"The {model_name} is significantly worse than {baseline_name} on {label}: {ranking}."
    if t <= T_CRITICAL:
        return f"The {model_name} does not significantly beat {baseline_name} on {label}: {ranking}."
    if money is None:
        return f"The {model_name} beats {baseline_name} on {label}: {ranking}."
    mine, theirs = money
    pays = (mine["spread_t"] > T_CRITICAL and mine["alpha"] > 0
            and mine["spread"] > theirs["spread"] and mine["alpha"] > theirs["alpha"])
    money_text = (f"long-short spread {mine['spread']:+.5f}/day (t = {mine['spread_t']:.2f}) vs "
                  f"{theirs['spread']:+.5f}, top-k alpha before cost {mine['alpha']:+.1%}/yr vs {theirs['alpha']:+.1%}")
    if pays:
        return f"The {model_name} beats {baseline_name} on {label}: {ranking}; and in money: {money_text}."
    return (f"The {model_name} ranks {label} better than {baseline_name} ({ranking}) but does not beat it in "
            f"money: {money_text}.")


def headline_statistics(signal: pd.Series, label: pd.Series, daily_rank_ic: pd.Series, spread: pd.Series, *,
                        n_perm: int = 200, seed: int = 0) -> dict[str, Any]:
    """Intervals and a permutation test for the headline row (kronos.stats).

    Args:
        signal, label: the headline signal and label on (datetime, instrument).
        daily_rank_ic: its daily RankIC; spread: its daily top-minus-bottom quantile return.

    Returns:
        ``rank_ic_ci`` and ``spread_ci`` (95 % moving-block bootstrap by date, [lo, hi]),
        ``rank_ic_permutation_p`` (instruments shuffled within each date, ``n_perm`` times).
    """
    frame = pd.DataFrame({"signal": signal, "label": label}).dropna()
    ci = {}
    for key, series in (("rank_ic_ci", daily_rank_ic), ("spread_ci", spread)):
        values = np.asarray(series.dropna(), dtype=np.float64)
        ci[key] = list(stats.block_bootstrap_ci(values, seed=seed)) if len(values) > 2 else [float("nan")] * 2
    p = stats.permutation_pvalue(frame, "signal", "label", n_perm=n_perm, seed=seed) if len(frame) else float("nan")
    return ci | {"rank_ic_permutation_p": float(p), "n_perm": int(n_perm), "level": 0.95}
