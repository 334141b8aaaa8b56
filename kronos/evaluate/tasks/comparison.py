"""What every task shares: per-date averages, the overlap of H-step windows, Diebold–Mariano against the
best baseline, and the verdict sentence.

Loss series are compared per decision date (the mean over the series of that date), since every series
of one date shares the market's move: dates, not origins, are the independent-ish draws.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from kronos.stats import diebold_mariano


def window_overlap(horizon: int, stride: int) -> int:
    """How many consecutive origins of a series share part of their H-step future: ``ceil(H / stride)``.

    1 when the windows do not overlap (stride >= H); the lag of the HAC variance is this minus 1.
    """
    return max(1, math.ceil(int(horizon) / max(int(stride), 1)))


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


def margin_text(mine: float, theirs: float, relative: bool) -> str:
    """``12 %`` (relative to the other's value) for losses, ``0.031`` (absolute) for correlations."""
    if relative and theirs not in (0.0,) and np.isfinite(theirs):
        return f"{abs(mine - theirs) / abs(theirs):.0%}".replace("%", " %")
    return f"{abs(mine - theirs):.3g}"


def verdict(rows: Mapping[str, Mapping[str, Any]], models: list[str], baselines: list[str], metric: str,
            label: str, higher_is_better: bool, relative: bool, dm: Mapping[str, Mapping[str, Any]]) -> str:
    """One sentence: each model against the task's best baseline on ``metric``, with the margin and DM t.

    E.g. ``kronos loses to garch on QLIKE by 12 % (0.41 vs 0.36), DM t = -3.1``.
    """
    target = best(rows, baselines, metric, higher_is_better)
    clauses = []
    for name in models:
        value = rows.get(name, {}).get(metric)
        if value is None or not np.isfinite(value):
            clauses.append(f"{name} has no {label}")
            continue
        if target is None:
            clauses.append(f"{name} scores {label} {value:.4g} (no baseline has one)")
            continue
        other = float(rows[target][metric])
        wins = value > other if higher_is_better else value < other
        word = "beats" if wins else ("ties with" if value == other else "loses to")
        t = (dm.get(name) or {}).get("t")
        t_text = f", DM t = {t:.2f}" if t is not None and np.isfinite(t) else ", DM t undefined"
        clauses.append(f"{name} {word} {target} on {label} by {margin_text(value, other, relative)} "
                       f"({value:.4g} vs {other:.4g}){t_text}")
    return "; ".join(clauses) + "." if clauses else "no model to compare."
