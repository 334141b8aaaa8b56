"""The numbers behind the backtest's significance: IC summaries per label, paired differences against each
baseline, and the headline's intervals and permutation test (every formula lives in :mod:`kronos.stats`).

IC = per decision date, the cross-sectional Pearson correlation of a signal with a realised label;
RankIC = the same on within-date ranks (Spearman), both from :func:`kronos.stats.daily_ic`. Their daily
series are summarised by :func:`kronos.stats.ic_summary`: the mean, the information ratio (mean / std) and a
t-statistic of the mean from :func:`kronos.stats.mean_t` (classical for labels that do not overlap from one
decision date to the next, Hansen–Hodrick for multi-day labels, whose daily ICs are autocorrelated because
the H-day label of consecutive dates shares H - 1 days of returns).

The words built from these numbers are :mod:`kronos.backtest.verdict`'s, through :mod:`kronos.verdicts`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from kronos import stats


def _daily_ics(signal: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per decision date, ``ic`` and ``rank_ic`` of ``signal`` with ``label`` (:func:`kronos.stats.daily_ic`).

    Args:
        signal, label: float Series on the same (datetime, instrument) MultiIndex.

    Returns:
        DataFrame indexed by datetime with columns ``ic`` and ``rank_ic``, on the dates where both are defined.
    """
    frame = pd.DataFrame({"signal": signal, "label": label})
    out = pd.DataFrame({"ic": stats.daily_ic(frame, "signal", "label", method="pearson"),
                        "rank_ic": stats.daily_ic(frame, "signal", "label", method="spearman")})
    return out.dropna()


def _ic_row(daily: pd.DataFrame, overlap: int = 1) -> dict[str, float]:
    """metrics.json's IC row of one (signal, label): :func:`kronos.stats.ic_summary` of ``ic`` and of
    ``rank_ic`` under the keys ``ic, icir, ic_t, ic_p, rank_ic, rank_icir, rank_ic_t, rank_ic_p, days``."""
    ic = stats.ic_summary(daily["ic"], overlap)
    rank = stats.ic_summary(daily["rank_ic"], overlap)
    return {"ic": ic["ic"], "icir": ic["icir"], "ic_t": ic["t"], "ic_p": ic["p"],
            "rank_ic": rank["ic"], "rank_icir": rank["icir"], "rank_ic_t": rank["t"], "rank_ic_p": rank["p"],
            "days": int(len(daily))}


def ic_report(signal: pd.Series, labels: pd.DataFrame, overlaps: Mapping[str, int],
              ) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """IC rows and daily series of ``signal`` against every label column.

    Args:
        signal: Series on (datetime, instrument).
        labels: DataFrame on the same index, one column per label.
        overlaps: {label: how many decision dates one label spans} (1 = no overlap).

    Returns:
        ({label: :func:`_ic_row`}, {label: :func:`_daily_ics` frame}).
    """
    summaries, dailies = {}, {}
    for label in labels.columns:
        daily = _daily_ics(signal, labels[label])
        summaries[label] = _ic_row(daily, overlap=int(overlaps.get(label, 1)))
        dailies[label] = daily
    return summaries, dailies


def paired_difference(model: pd.Series, baseline: pd.Series, overlap: int = 1) -> dict[str, float]:
    """Mean of ``model - baseline`` over the dates both have, with its t (:func:`kronos.stats.mean_t`).

    Args:
        model, baseline: daily series indexed by date (a daily RankIC, a daily spread, a daily return).
        overlap: how many decision dates one observation spans.

    Returns:
        ``diff`` (mean daily difference; NaN without common dates), ``t``, ``p`` (two-sided) and ``days``.
    """
    diff = (model - baseline).replace([np.inf, -np.inf], np.nan).dropna()
    stat = stats.mean_t(diff.to_numpy(), overlap)
    return {"diff": float(diff.mean()) if len(diff) else float("nan"), "t": stat.t, "p": stat.p,
            "days": int(len(diff))}


def compare(model: pd.DataFrame, baseline: pd.DataFrame, overlap: int = 1) -> dict[str, float]:
    """The model's daily RankIC minus a baseline's on the days both have, and its t-statistic.

    Args:
        model, baseline: daily frames of :func:`ic_report` for the same label.
        overlap: how many decision dates the label spans (for :func:`kronos.stats.mean_t`).

    Returns:
        ``rank_ic_diff`` (mean daily difference), ``t``, ``p`` (two-sided) and ``days``.
    """
    out = paired_difference(model["rank_ic"], baseline["rank_ic"], overlap)
    return {"rank_ic_diff": out.pop("diff"), **out}


def headline_statistics(signal: pd.Series, label: pd.Series, daily_rank_ic: pd.Series, spread: pd.Series, *,
                        n_perm: int = 200, seed: int = 0) -> dict[str, Any]:
    """Intervals and a permutation test for the headline row (kronos.stats).

    Args:
        signal, label: the headline signal and label on (datetime, instrument).
        daily_rank_ic: its daily RankIC; spread: its daily top-minus-bottom quantile return.

    Returns:
        ``rank_ic_ci`` and ``spread_ci`` (95 % moving-block bootstrap by date, [lo, hi]),
        ``rank_ic_permutation_p`` (instruments shuffled within each date, ``n_perm`` times; its smallest
        possible value is ``1 / (n_perm + 1)``, where it reads as a bound).
    """
    frame = pd.DataFrame({"signal": signal, "label": label}).dropna()
    ci = {}
    for key, series in (("rank_ic_ci", daily_rank_ic), ("spread_ci", spread)):
        values = np.asarray(series.dropna(), dtype=np.float64)
        ci[key] = list(stats.block_bootstrap_ci(values, seed=seed)) if len(values) > 2 else [float("nan")] * 2
    p = stats.permutation_pvalue(frame, "signal", "label", n_perm=n_perm, seed=seed) if len(frame) else float("nan")
    return ci | {"rank_ic_permutation_p": float(p), "n_perm": int(n_perm), "level": 0.95}
