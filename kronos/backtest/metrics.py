"""Information coefficients: daily cross-sectional correlation of a signal with realised returns.

Labels (both computed from the evaluation batches' raw closes, never from the model's inputs):
``next_return`` = close[t+1] / close[t] - 1 (what the first forecast step targets) and
``horizon_return`` = close[t+H] / close[t] - 1 (what the whole forecast targets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABELS = ("next_return", "horizon_return")


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


def ic_summary(daily: pd.DataFrame) -> dict[str, float]:
    """Means and information ratios (mean / std, ddof=1, not annualised) of the daily IC series."""
    def ratio(x: pd.Series) -> float:
        return float(x.mean() / x.std()) if len(x) > 1 and x.std() > 0 else float("nan")

    return {
        "ic": float(daily["ic"].mean()),
        "icir": ratio(daily["ic"]),
        "rank_ic": float(daily["rank_ic"].mean()),
        "rank_icir": ratio(daily["rank_ic"]),
        "days": int(len(daily)),
    }


def ic_report(signal: pd.Series, forecasts: pd.DataFrame) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """IC summaries and daily series of ``signal`` against every label in :data:`LABELS`.

    Args:
        signal: Series on (datetime, instrument) (``model_signal`` / ``baseline_signal``).
        forecasts: output of ``forecast_split`` (holds the label columns).

    Returns:
        ({label: ic_summary}, {label: daily_ic frame}).
    """
    index = pd.MultiIndex.from_arrays([forecasts["datetime"], forecasts["instrument"]], names=["datetime", "instrument"])
    summaries, dailies = {}, {}
    for label in LABELS:
        daily = daily_ic(signal, pd.Series(forecasts[label].to_numpy(), index=index))
        summaries[label], dailies[label] = ic_summary(daily), daily
    return summaries, dailies
