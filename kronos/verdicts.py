"""The one verdict builder: every "model vs baseline" sentence in every report is written here.

The words follow the statistics: "beats" or "loses to" only where the test rejects equality at the
level (5 % two-sided by default), otherwise "is not significantly different from"; where a comparison
cannot be computed (too few dates, a missing value, a degenerate signal) the sentence says that it
cannot judge and why. A p-value at the floor of a permutation test of N draws is written as a bound
("p < 1/201 (0.005)" for N = 200). Single-sample claims ("significantly positive") use :func:`significant`;
classifier-type scores whose best value is chance (the generation task's discriminative score) are compared
by :func:`distance_from_chance`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Literal

ALPHA = 0.05  # two-sided level of every verdict

Outcome = Literal["beats", "loses to", "is not significantly different from", "cannot judge"]


def _finite(x: float | None) -> bool:
    """True for a finite real number (Python or numpy), False for None, NaN, inf, bools and anything else."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def permutation_floor(draws: int) -> float:
    """The smallest p-value a permutation test of ``draws`` shuffles can give: ``1 / (draws + 1)``."""
    return 1.0 / (int(draws) + 1.0)


def p_text(p: float | None, floor: float | None = None) -> str:
    """``p = 0.031``; at the test's ``floor`` a bound: ``p < 1/201 (0.005)`` for a permutation test of 200 draws
    (``floor`` = :func:`permutation_floor`), ``p < 0.005`` for any other floor; ``p < 0.001``; ``p undefined``."""
    if not _finite(p):
        return "p undefined"
    if floor is not None and float(p) <= floor * (1 + 1e-9):
        draws_plus_one = round(1.0 / floor)
        if draws_plus_one > 1 and abs(1.0 / draws_plus_one - floor) <= 1e-12:
            return f"p < 1/{draws_plus_one} ({floor:.2g})"
        return f"p < {floor:.2g}"
    return f"p = {float(p):.2g}" if float(p) >= 0.001 else "p < 0.001"


def significant(t: float | None, p: float | None, sign: int = 1) -> bool:
    """True where a test rejects at :data:`ALPHA` in the direction ``sign`` (+1: t > 0, -1: t < 0).

    The one rule behind "significantly positive" in every report: finite t and p, ``p < ALPHA``, t of the sign.
    """
    return _finite(t) and _finite(p) and float(p) < ALPHA and float(t) * sign > 0


def stat_text(t: float | None, p: float | None, test: str = "t", floor: float | None = None) -> str:
    """``t = 2.31, p = 0.021`` (``test`` names the statistic); ``t undefined`` where it cannot be computed."""
    if not _finite(t):
        return f"{test} undefined"
    return f"{test} = {float(t):.2f}, {p_text(p, floor)}"


def distance_from_chance(score: float | None, chance: float = 0.5) -> float | None:
    """``|score - chance|``: how far a classifier-type score is from "cannot tell" (lower is better).

    A discriminative score of 0.6 and one of 0.4 are equally far from 0.5: both mean the classifier can
    tell real from generated windows; 0.5 is best. Rank and compare generators on this, not on the score.
    """
    return abs(float(score) - chance) if _finite(score) else None


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
        value_format: how the two values are printed (``"{:+.1%}"`` for an annualised return).
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
    value_format: str = "{:.4g}"

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
        values = f"{self.value_format.format(float(self.model_value))} vs " \
                 f"{self.value_format.format(float(self.baseline_value))}"
        stat = stat_text(self.t, self.p, self.test, self.p_floor)
        return f"{self.model} {self.outcome} {self.baseline} on {self.metric} ({values}; {stat})"

    def as_dict(self) -> dict[str, object]:
        """Plain-JSON record for metrics.json: the inputs, the ``outcome`` word and the ``sentence``."""
        return {"model": self.model, "baseline": self.baseline, "metric": self.metric,
                "model_value": self.model_value, "baseline_value": self.baseline_value,
                "higher_is_better": self.higher_is_better, "test": self.test, "t": self.t, "p": self.p,
                "p_floor": self.p_floor, "outcome": self.outcome, "sentence": self.sentence()}


def verdict_text(comparisons: list[Comparison]) -> str:
    """The sentences of ``comparisons`` joined into one verdict ("no model to compare." when empty)."""
    return "; ".join(c.sentence() for c in comparisons) + "." if comparisons else "no model to compare."
