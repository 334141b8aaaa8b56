"""The one verdict builder: every "model vs baseline" sentence in every report is written here.

The words follow the statistics: "beats" or "loses to" only where the test rejects equality at the
level (5 % two-sided by default), otherwise "is not significantly different from"; where a comparison
cannot be computed (too few dates, a missing value, a degenerate signal) the sentence says that it
cannot judge and why. A p-value at the floor of a permutation test is written as a bound ("p < 0.005").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05  # two-sided level of every verdict

Outcome = Literal["beats", "loses to", "is not significantly different from", "cannot judge"]


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(float(x))


def p_text(p: float | None, floor: float | None = None) -> str:
    """``p = 0.031``, ``p < 0.005`` when ``p`` sits at the test's ``floor`` (e.g. 1/(draws+1)), ``p undefined``."""
    if not _finite(p):
        return "p undefined"
    if floor is not None and float(p) <= floor * (1 + 1e-9):
        return f"p < {floor:.2g}"
    return f"p = {float(p):.2g}" if float(p) >= 0.001 else "p < 0.001"


@dataclass(frozen=True)
class Comparison:
    """One model against one baseline on one metric, with the test that decides the words.

    Attributes:
        model, baseline: names as the report shows them.
        metric: the metric's label in words (e.g. "QLIKE", "RankIC on trade_return").
        model_value, baseline_value: the metric of each (None where it cannot be computed).
        higher_is_better: direction of ``metric``.
        t, p: the test of the difference (positive t: the model is better), None when not computed.
        test: the test's name as printed ("DM t", "paired t", ...).
        p_floor: the smallest p the test can give (permutation tests), so a p at the floor reads as a bound.
        reason: why the comparison cannot be judged (set by the caller where it knows; else derived).
    """

    model: str
    baseline: str
    metric: str
    model_value: float | None
    baseline_value: float | None
    higher_is_better: bool
    t: float | None
    p: float | None
    test: str = "t"
    p_floor: float | None = None
    reason: str | None = None

    @property
    def outcome(self) -> Outcome:
        """The word the statistics allow (see module docstring)."""
        if self.cannot_judge_reason() is not None:
            return "cannot judge"
        if float(self.p) >= ALPHA:
            return "is not significantly different from"
        return "beats" if float(self.t) > 0 else "loses to"

    def cannot_judge_reason(self) -> str | None:
        """Why no verdict can be given, or None."""
        if self.reason:
            return self.reason
        if not _finite(self.model_value):
            return f"{self.model} has no {self.metric}"
        if not _finite(self.baseline_value):
            return f"{self.baseline} has no {self.metric}"
        if not _finite(self.t) or not _finite(self.p):
            return f"the {self.test} test of the difference cannot be computed"
        return None

    def sentence(self) -> str:
        """E.g. ``kronos loses to ewma on QLIKE (0.72 vs 0.36; DM t = -3.10, p < 0.001)``."""
        why = self.cannot_judge_reason()
        if why is not None:
            return f"cannot judge {self.model} against {self.baseline} on {self.metric}: {why}"
        values = f"{float(self.model_value):.4g} vs {float(self.baseline_value):.4g}"
        stat = f"{self.test} = {float(self.t):.2f}, {p_text(self.p, self.p_floor)}"
        return f"{self.model} {self.outcome} {self.baseline} on {self.metric} ({values}; {stat})"


def verdict_text(comparisons: list[Comparison]) -> str:
    """The sentences of ``comparisons`` joined into one verdict ("no model to compare." when empty)."""
    return "; ".join(c.sentence() for c in comparisons) + "." if comparisons else "no model to compare."
