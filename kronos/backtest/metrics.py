"""Information coefficients and their significance.

IC = per decision date, the cross-sectional Pearson correlation of a signal with a realised label;
RankIC = the same on within-date ranks (Spearman). Their daily series are summarised by the mean, the
information ratio (mean / std) and a t-statistic of the mean: plain (i.i.d. days) for labels that do not
overlap from one decision date to the next, Newey-West with lag = overlap - 1 for multi-day labels
(the H-day label of consecutive dates shares H-1 days of returns, so its daily ICs are autocorrelated).
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
    frame = pd.DataFrame({"signal": signal, "label": label}).dropna()
    by_date = frame.groupby(level="datetime")
    # Spearman = Pearson of the within-date ranks (average ranks for ties).
    ranks = by_date.rank()
    out = pd.DataFrame({"ic": _pearson(frame), "rank_ic": _pearson(ranks)})
    return out.replace([np.inf, -np.inf], np.nan).dropna()


def _pearson(frame: pd.DataFrame) -> pd.Series:
    """Per-date Pearson correlation of the ``signal`` and ``label`` columns (vectorised over dates)."""
    by_date = frame.groupby(level="datetime")
    centred = frame - by_date.transform("mean")
    sums = (centred["signal"] * centred["label"]).groupby(level="datetime").sum()
    var_s = (centred["signal"] ** 2).groupby(level="datetime").sum()
    var_l = (centred["label"] ** 2).groupby(level="datetime").sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums / np.sqrt(var_s * var_l)


def t_statistic(series: pd.Series | np.ndarray, lag: int = 0) -> float:
    """t-statistic of the mean of a daily series.

    ``lag == 0``: the plain ``mean / (std(ddof=1) / sqrt(n))``. ``lag > 0``: Newey-West (Bartlett
    kernel): the long-run variance ``g0 + 2 * sum_{k=1..lag} (1 - k / (lag + 1)) * g_k`` with
    autocovariances ``g_k = sum_t (x_t - m)(x_{t-k} - m) / n``, and ``t = m / sqrt(lrv / n)``.
    NaN when fewer than 3 values or no variance.
    """
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3:
        return float("nan")
    mean = x.mean()
    if lag <= 0:
        sd = x.std(ddof=1)
        return float(mean / (sd / np.sqrt(n))) if sd > 0 else float("nan")
    d = x - mean
    lrv = d @ d / n
    for k in range(1, min(int(lag), n - 1) + 1):
        lrv += 2.0 * (1.0 - k / (lag + 1.0)) * (d[k:] @ d[:-k]) / n
    return float(mean / np.sqrt(lrv / n)) if lrv > 0 else float("nan")


def ic_summary(daily: pd.DataFrame, lag: int = 0) -> dict[str, float]:
    """Means, information ratios (mean / std, ddof=1, not annualised), t-statistics and the day count.

    Args:
        daily: output of :func:`daily_ic`.
        lag: Newey-West lag for the t-statistics (label overlap - 1; 0 = plain t).
    """
    def ratio(x: pd.Series) -> float:
        return float(x.mean() / x.std()) if len(x) > 1 and x.std() > 0 else float("nan")

    return {
        "ic": float(daily["ic"].mean()),
        "icir": ratio(daily["ic"]),
        "ic_t": t_statistic(daily["ic"], lag),
        "rank_ic": float(daily["rank_ic"].mean()),
        "rank_icir": ratio(daily["rank_ic"]),
        "rank_ic_t": t_statistic(daily["rank_ic"], lag),
        "days": int(len(daily)),
    }


def ic_report(signal: pd.Series, labels: pd.DataFrame, overlaps: Mapping[str, int],
              ) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """IC summaries and daily series of ``signal`` against every label column.

    Args:
        signal: Series on (datetime, instrument).
        labels: DataFrame on the same index, one column per label.
        overlaps: {label: how many decision dates one label spans} (1 = no overlap); the t-statistic's
            Newey-West lag is overlap - 1.

    Returns:
        ({label: ic_summary}, {label: daily_ic frame}).
    """
    summaries, dailies = {}, {}
    for label in labels.columns:
        daily = daily_ic(signal, labels[label])
        summaries[label] = ic_summary(daily, lag=int(overlaps.get(label, 1)) - 1)
        dailies[label] = daily
    return summaries, dailies


def compare(model: pd.DataFrame, baseline: pd.DataFrame, lag: int = 0) -> dict[str, float]:
    """The model's daily RankIC minus a baseline's on the days both have, and its t-statistic.

    Args:
        model, baseline: :func:`daily_ic` frames of the same label.
        lag: Newey-West lag (label overlap - 1).

    Returns:
        ``rank_ic_diff`` (mean daily difference), ``t`` and ``days``.
    """
    diff = (model["rank_ic"] - baseline["rank_ic"]).dropna()
    return {"rank_ic_diff": float(diff.mean()) if len(diff) else float("nan"),
            "t": t_statistic(diff, lag), "days": int(len(diff))}


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
