"""What every task shares: which forecasts are valid, per-date averages, the overlap of H-step windows,
Diebold–Mariano against the best baseline, and the verdict sentence (through :mod:`kronos.verdicts`:
"beats" / "loses to" only where the DM test rejects at 5 %).

Loss series are compared per decision date (the mean over the series of that date), since every series
of one date shares the market's move: dates, not origins, are the independent-ish draws.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from kronos.stats import diebold_mariano
from kronos.verdicts import Comparison, verdict_text


def window_overlap(horizon: int, stride: int) -> int:
    """How many consecutive origins of a series share part of their H-step future: ``ceil(H / stride)``.

    1 when the windows do not overlap (stride >= H); the lag of the HAC variance is this minus 1.
    """
    return max(1, math.ceil(int(horizon) / max(int(stride), 1)))


def valid_forecasts(paths: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Which origins' sample paths are possible prices: every value finite and positive on the scored steps.

    Args:
        paths: [N, S, H] or [N, S, H, C] sample paths in price units (C price channels).
        observed: bool [N, H], the steps that are scored (None: all).

    Returns:
        bool [N]; False marks an invalid forecast, which every task counts and scores as a failure.
    """
    p = np.asarray(paths, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(p) & (p > 0)
    if p.ndim == 4:
        good = good.all(axis=3)
    if observed is not None:
        good = good | ~np.asarray(observed, dtype=bool)[:, None, :]
    return good.reshape(len(p), -1).all(axis=1)


def per_date(values: np.ndarray, dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the finite ``values`` [N] per distinct date of ``dates`` [N].

    Returns:
        (dates [D] sorted, means [D]); dates without a finite value are left out.
    """
    values = np.asarray(values, dtype=np.float64)
    dates = np.asarray(dates)
    ok = np.isfinite(values)
    uniq, inverse = np.unique(dates[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=values[ok], minlength=len(uniq))
    counts = np.bincount(inverse, minlength=len(uniq))
    return uniq, sums / np.maximum(counts, 1)


def dm_against(model_loss: Mapping[Any, float], baseline_loss: Mapping[Any, float], overlap: int) -> dict[str, Any]:
    """Diebold–Mariano test of a model's per-date losses against a baseline's, on their common dates.

    Args:
        model_loss, baseline_loss: date -> loss (lower is better).
        overlap: ``window_overlap`` of the task (the DM horizon).

    Returns:
        ``t``, ``p``, ``n`` (dates), ``mean_diff`` = mean(baseline loss - model loss): positive ``t``
        means the model's loss is lower (the model is better), negative that the baseline's is.
    """
    common = sorted(set(model_loss) & set(baseline_loss))
    a = np.array([baseline_loss[d] for d in common], dtype=np.float64)
    b = np.array([model_loss[d] for d in common], dtype=np.float64)
    if len(common) < 3:
        return {"t": float("nan"), "p": float("nan"), "n": len(common), "mean_diff": float("nan")}
    # diebold_mariano(a, b): mean(a - b), negative t when a (here the baseline) has the lower loss.
    res = diebold_mariano(a, b, horizon=overlap)
    return {"t": float(res.t), "p": float(res.p), "n": int(res.n), "mean_diff": float(res.mean_diff)}


def best(rows: Mapping[str, Mapping[str, Any]], names: list[str], metric: str, higher_is_better: bool) -> str | None:
    """The name among ``names`` with the best finite ``rows[name][metric]`` (None when none has one)."""
    scored = [(float(rows[n][metric]), n) for n in names
              if rows.get(n, {}).get(metric) is not None and np.isfinite(rows[n][metric])]
    if not scored:
        return None
    return (max if higher_is_better else min)(scored)[1]


def comparisons(rows: Mapping[str, Mapping[str, Any]], models: Sequence[str], baselines: Sequence[str], metric: str,
                label: str, higher_is_better: bool, overlap: int) -> tuple[list[Comparison], dict[str, Any]]:
    """Each model against the best of ``baselines`` on ``metric``, decided by a Diebold–Mariano test over dates.

    Args:
        rows: name -> task row (``metric`` and ``_loss`` {date: loss}, lower loss is better).
        label: the metric's words in the sentence; overlap: the DM horizon.

    Returns:
        (one :class:`kronos.verdicts.Comparison` per model, {model: DM result with ``against``}).
    """
    target = best(rows, list(baselines), metric, higher_is_better)
    out, dm = [], {}
    for name in models:
        value = rows.get(name, {}).get(metric)
        if target is None:
            out.append(Comparison(name, "the baselines", label, value, None, higher_is_better, None, None, "DM t",
                                  reason=f"no baseline has a {label}"))
            continue
        dm[name] = {"against": target, **dm_against(rows[name].get("_loss", {}), rows[target].get("_loss", {}),
                                                    overlap)}
        out.append(Comparison(name, target, label, value, rows[target].get(metric), higher_is_better,
                              dm[name]["t"], dm[name]["p"], "DM t"))
    return out, dm


def verdict(found: Sequence[Comparison], invalid: Mapping[str, int] | None = None) -> str:
    """The verdict sentence of ``found`` (:func:`kronos.verdicts.verdict_text`), with each model's count of invalid
    forecasts scored as failures where it has any."""
    text = verdict_text(list(found))
    notes = [f"{name}: {count} invalid forecast{'s' if count != 1 else ''} scored as failures"
             for name, count in (invalid or {}).items() if count]
    return f"{text[:-1]} ({'; '.join(notes)})." if notes else text
