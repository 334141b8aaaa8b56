"""The evaluate tasks as one table: one record per task, which the settings, the suite and the report read.

A record says what the task is called, when it applies, its headline metric and direction, the columns of
its table, its definition (written into ``metrics.json``'s ``definitions``) and which function runs it.
``applies`` and ``runner`` are ``"module:function"`` references resolved on use, so this table imports
nothing of the tasks (``settings`` reads the names without importing the task modules).

``accuracy`` is scored by the stage runner (``kronos.evaluate.runner``) on the ``evaluate.sampling``
paths; its record carries the headline and definition. The suite runs the records with a runner, in
table order.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

POINT_FORECAST = "median"  # every task's point forecast: kronos.scores.point_forecast (median of the paths)


@dataclass(frozen=True)
class TaskSpec:
    """One evaluate task.

    Attributes:
        name: the task's name (``evaluate.tasks``, ``evaluate.task_sampling`` keys, ``metrics.json``'s ``tasks``).
        needs: when it applies, in words (the check itself is ``applies``).
        metric, label, higher_is_better: the headline metric, its words in the verdict, its direction.
        columns: the row fields shown in the report's table.
        definition: what the numbers mean (``metrics.json``'s ``definitions.tasks.<name>``).
        baselines: where its baselines come from, in words.
        applies: ``"module:function"``, ``f(origins) -> None | reason it cannot run`` (None for accuracy).
        runner: ``"module:function"``, ``f(TaskContext) -> TaskRows`` (None: scored by the stage runner).
    """

    name: str
    needs: str
    metric: str
    label: str
    higher_is_better: bool
    columns: tuple[str, ...]
    definition: str
    baselines: str
    applies: str | None = None
    runner: str | None = None

    def resolve(self, which: str) -> Callable[..., Any]:
        """The function named by ``applies`` or ``runner``."""
        ref = getattr(self, which)
        if ref is None:
            raise ValueError(f"task {self.name!r} has no {which}")
        module, function = ref.split(":")
        return getattr(importlib.import_module(module), function)


_SUITE = "kronos.evaluate.tasks.suite"

TASK_TABLE: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="accuracy", needs="always (every origin)", metric="relative_crps", label="relative CRPS",
        higher_is_better=False,
        columns=("mae", "mase", "crps", "scaled_crps", "relative_mase", "relative_crps", "invalid"),
        definition="see definitions.mae ... relative_crps; the point forecast is the median of the sample paths; an "
                   "origin whose paths hold a close that is not a finite positive price is an invalid forecast: "
                   "counted (invalid) and scored as a failure (per step the worst error and CRPS any forecaster "
                   "has there, not covered, direction missed)",
        baselines="evaluate.baselines (path baselines: naive, drift, hist_vol)"),
    TaskSpec(
        name="price", needs="raw open/high/low/close and a horizon of at least 3 rows", metric="rank_ic",
        label="RankIC", higher_is_better=True, columns=("ic", "rank_ic", "rank_ic_t", "origins", "invalid"),
        definition="per origin and channel (open, high, low, close) the Pearson IC / Spearman RankIC between the "
                   "point forecast (median of the sample paths) and the realised path over the horizon (steps that "
                   "exist, at least 3); averaged over channels, then origins; rank_ic_t: t over dates of the "
                   "per-date mean RankIC (HAC, lag = overlap - 1); an invalid forecast (a price that is not finite "
                   "and positive) scores IC = RankIC = -1 at its origin; baselines naive and drift (hist_vol's point "
                   "forecast is naive's path plus sampling noise)",
        baselines="the path baselines whose point forecast is not noise (naive, drift) applied to each channel",
        applies=f"{_SUITE}:price_applies",
        runner=f"{_SUITE}:run_price"),
    TaskSpec(
        name="return", needs="at least 3 series on one date (a cross-sectional IC)", metric="rank_ic",
        label="RankIC", higher_is_better=True, columns=("ic", "rank_ic", "rank_ic_t", "icir", "dates", "invalid"),
        definition="per date the cross-sectional Pearson IC / Spearman RankIC of the predicted H-step return "
                   "(point forecast of the close at H, the median of the sample paths, / last close - 1) with the realised one (to the last close "
                   "that exists); means over dates; rank_ic_t: t over dates, HAC with lag overlap - 1 where stride "
                   "< H. Baselines: the rules of kronos.rules (volume: abnormal volume, momentum / reversal: the "
                   "past H-row return, low_vol: minus the trailing 20-row volatility); an invalid forecast is ranked "
                   "at the wrong end of its date",
        baselines="the cross-sectional rules volume, momentum, reversal, low_vol", applies=f"{_SUITE}:return_applies",
        runner=f"{_SUITE}:run_return"),
    TaskSpec(
        name="volatility", needs="a lookback of at least 3 rows", metric="qlike", label="QLIKE",
        higher_is_better=False,
        columns=("mae", "r2", "qlike", "mz_alpha", "mz_beta", "mz_p", "origins", "invalid"),
        definition="realised variance = sum of squared close log returns over the steps that exist; models: the "
                   "same per sample path, averaged; mae of the square roots, qlike = mean(y/f - log(y/f) - 1), "
                   "Mincer-Zarnowitz regression y = a + b f (mz_alpha, mz_beta, r2, mz_p: joint test a=0, b=1, "
                   "HAC). hist_vol: the lookback's sample variance (ddof 1) of log returns per step; ewma: "
                   "RiskMetrics 0.94; garch: GARCH(1,1)-t estimated on the training split, filtered through each "
                   "lookback. An invalid forecast scores the worst QLIKE and error any forecaster has at its origin "
                   "and is left out of the MZ regression (mz_origins)",
        baselines="hist_vol, ewma, garch (kronos/evaluate/tasks/volatility.py)",
        applies=f"{_SUITE}:volatility_applies", runner=f"{_SUITE}:run_volatility"),
    TaskSpec(
        name="generation", needs="raw candles, a horizon of 3 rows or more (shorter than the lookback) and 10 "
                                 "complete futures",
        metric="discriminative_accuracy_gap", label="discriminative accuracy gap |acc - 0.5|",
        higher_is_better=False,
        columns=("discriminative_score", "discriminative_accuracy_gap", "predictive_rank_ic", "windows",
                 "invalid_windows"),
        definition="see kronos/evaluate/tasks/generation.py: discriminative_score = held-out error of a GRU "
                   "telling real from generated windows (0.5 ideal), discriminative_accuracy_gap = |acc - 0.5| "
                   "(the headline: 0.6 and 0.4 are equally far from indistinguishable), predictive_rank_ic = "
                   "Spearman on real windows of a GRU trained on generated ones, stylized_facts.<fact>.{real, "
                   "generated, distance} on the valid windows; an invalid window (a price that is not finite and "
                   "positive, a negative volume) is counted and scored as told apart",
        baselines="bootstrap, garch_sim, random_walk", applies=f"{_SUITE}:generation_applies",
        runner=f"{_SUITE}:run_generation"),
)

TASKS_BY_NAME: dict[str, TaskSpec] = {t.name: t for t in TASK_TABLE}
SUITE_TASKS: tuple[str, ...] = tuple(t.name for t in TASK_TABLE if t.runner is not None)
