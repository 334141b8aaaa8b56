"""When a backtest statistic cannot be computed: the rules, in one place, and the pass that applies them.

A statistic is null with a reason (never NaN, never a number that only looks like one) when:

- the cross-section is too thin: fewer than ``MIN_INSTRUMENTS`` instruments with a signal and a label on the
  median decision day (one instrument has no cross-sectional correlation), or fewer than ``quantiles`` for
  the quantile groups and the long-short spread (two instruments cannot fill five groups);
- the signal is degenerate: constant, or fewer distinct values a day than quantiles (e.g.
  ``backtest.signal=sharpe`` with one sample path is 0 everywhere);
- there are too few decision days: fewer than ``MIN_DAYS`` for a t-statistic or an annualised figure
  (a 4-day test split does not give "alpha +86.5 %/yr");
- the portfolio never invested: under ``MIN_INVESTED`` of the account in positions on the median day (a
  volume cap of ``1e-12``, an account too small for one lot): no alpha, no break-even cost;
- the benchmark has no return on part of the period (it does not cover it): no excess return or alpha.

:func:`guard_backtest` nulls the figures of each affected signal row (``unavailable``: {part: reason}),
adds one warning per reason to ``metrics.json``/the report; where the headline model row is affected it sets
``cannot_judge`` (the money verdict needs the ranking, the spread and the portfolio), and where the model's
or a baseline's ranking is, turns that model-vs-baseline verdict into "cannot judge ...: reason"
(:class:`kronos.verdicts.Comparison`). Also null: everything when every instrument earns the same
(constant prices).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from kronos.verdicts import Comparison

MIN_INSTRUMENTS = 3  # a cross-sectional rank correlation of two names is always +-1
MIN_DAYS = 20  # decision days for a t-statistic or an annualised return (about a month of trading)
MIN_INVESTED = 0.01  # share of the account held in positions on the median day
MIN_BENCHMARK_COVERAGE = 0.9  # share of the portfolio's days with a benchmark return
# Fields of a row that are counts or settings, kept when its statistics are nulled.
_PART_WORDS = {"ic": "no statistic of the signal", "factor": "no quantile spread",
               "portfolio": "no portfolio figure"}
_KEPT = {"days", "quantiles", "bars_per_year", "blocked_buys_limit_up", "clipped_orders", "delisted_sales",
         "risk_degree", "cost", "turnover"}


def cross_section_reason(signal: pd.Series, label: pd.Series, need: int, what: str) -> str | None:
    """Why the cross-section is too thin for ``what``, or None.

    Args:
        signal, label: float Series on the same (datetime, instrument) index.
        need: the fewest instruments with a signal and a label on the median day.
        what: the statistics concerned, for the message.
    """
    both = pd.DataFrame({"s": signal, "l": label}).dropna()
    per_day = both.groupby(level="datetime").size()
    median = float(per_day.median()) if len(per_day) else 0.0
    if median < need:
        return (f"only {median:g} instrument(s) with a signal and a label on the median day; {what} need at "
                f"least {need}")
    return None


def signal_reason(signal: pd.Series, quantiles: int | None = None) -> str | None:
    """Why the signal cannot rank anything, or None: no value, constant, or (given ``quantiles``) fewer
    distinct values a day than quantile groups."""
    values = signal.dropna()
    if values.empty:
        return "the signal has no value on any row"
    if values.nunique() <= 1:
        return f"the signal is constant ({float(values.iloc[0]):g} on every row)"
    distinct = float(values.groupby(level="datetime").nunique().median())
    if quantiles is not None and distinct < quantiles:
        return (f"the signal takes {distinct:g} distinct value(s) on the median day, fewer than "
                f"backtest.quantiles={quantiles}: its quantile groups are ties")
    return None


def days_reason(days: int) -> str | None:
    """Why ``days`` decision days are too few for t-statistics and annualised figures, or None."""
    if days < MIN_DAYS:
        return (f"only {days} decision day(s); t-statistics and annualised figures need at least {MIN_DAYS} "
                "(lengthen the test split)")
    return None


def portfolio_reason(report: pd.DataFrame | None, benchmark: str | None) -> str | None:
    """Why the portfolio's figures mean nothing (it never invested, or the benchmark misses days), or None.

    Args:
        report: Qlib's daily portfolio report (``turnover``, ``value``, ``bench``), or None (not run).
        benchmark: the benchmark's display name, for the message.
    """
    if report is None or report.empty:
        return None
    if "value" in report and "account" in report:
        share = (report["value"].fillna(0.0) / report["account"].where(report["account"] > 0)).fillna(0.0)
        if float(share.median()) < MIN_INVESTED:
            return (f"the portfolio never invested (it held {float(share.median()):.2g} of the account on the median "
                    "day): check backtest.max_participation, backtest.account (one lot must be affordable) and "
                    "the data's volume")
    bench = report["bench"] if "bench" in report else None
    if bench is not None and len(bench):
        covered = float((bench.notna() & (bench != 0)).mean())
        if covered < MIN_BENCHMARK_COVERAGE:
            return (f"the benchmark {benchmark} has a return on only {covered:.0%} of the portfolio's days (it does "
                    "not cover the period): set backtest.benchmark to one that does, or equal_weight")
    return None


def null_statistics(block: Any) -> Any:
    """``block`` with every number that is not a count or setting (``_KEPT``) set to None, recursively."""
    if isinstance(block, Mapping):
        return {k: (v if k in _KEPT else null_statistics(v)) for k, v in block.items()}
    if isinstance(block, (list, tuple)):
        return [null_statistics(v) for v in block]
    if isinstance(block, (int, float, np.floating, np.integer)) and not isinstance(block, bool):
        return None
    return block


def label_reason(label: pd.Series) -> str | None:
    """Why the realised label ranks nothing (every instrument earns the same on the median day), or None."""
    distinct = label.dropna().groupby(level="datetime").nunique()
    if distinct.empty or float(distinct.median()) <= 1:
        return ("the traded return is the same for every instrument on the median day (constant or identical "
                "prices): there is nothing to rank")
    return None


def row_reason(signal: pd.Series, label: pd.Series, days: int) -> str | None:
    """The first reason none of a signal row's statistics can be computed (cross-section, label, signal, days),
    or None."""
    return (cross_section_reason(signal, label, MIN_INSTRUMENTS, "cross-sectional statistics")
            or label_reason(label) or signal_reason(signal) or days_reason(days))


def quantile_reason(signal: pd.Series, label: pd.Series, quantiles: int) -> str | None:
    """Why the quantile statistics (factor groups, long-short) cannot be computed, or None."""
    return (cross_section_reason(signal, label, quantiles, f"backtest.quantiles={quantiles} groups")
            or signal_reason(signal, quantiles))


def guard_backtest(metrics: dict[str, Any], signals: Mapping[str, pd.Series], label: pd.Series, *,
                   quantiles: int, portfolios: Mapping[str, pd.DataFrame]) -> list[str]:
    """Null what cannot be computed in ``metrics`` (in place) and return one warning per reason.

    Args:
        metrics: the backtest's metrics (signal rows with ``ic``, ``factor``, ``long_short``, ``portfolio``;
            ``significance``; ``statistics``), before the verdict is written.
        signals: {row name: signal on (datetime, instrument)}.
        label: the headline label on the same index.
        quantiles: ``backtest.quantiles``.
        portfolios: {row name: Qlib's daily report} of the rows that were traded.
    """
    head = metrics["headline_label"]
    found: dict[str, list[str]] = {}
    for name, signal in signals.items():
        row = metrics[name]
        reason = row_reason(signal, label, int(row["ic"][head]["days"]))
        parts: tuple[str, ...] = ("ic", "factor", "long_short", "portfolio")
        if reason is None:
            reason, parts = quantile_reason(signal, label, quantiles), ("factor", "long_short")
            if reason is None:
                reason, parts = portfolio_reason(portfolios.get(name), metrics.get("benchmark")), ("portfolio",)
        if reason is None:
            continue
        for part in parts:
            row[part] = null_statistics(row.get(part))
        if "long_short" in parts and isinstance(row.get("portfolio"), dict) and "long_short" in row["portfolio"]:
            row["portfolio"]["long_short"] = row["long_short"]
        row["unavailable"] = {part: reason for part in parts}
        found.setdefault(reason, []).append(name)
    _guard_comparisons(metrics, head)
    return [f"Not computed for {', '.join(names)}: {reason}." for reason, names in found.items()]


def _guard_comparisons(metrics: dict[str, Any], head: str) -> None:
    """Model-vs-baseline verdicts and the headline statistics where the model or a baseline row has no figures."""
    unavailable = metrics["model"].get("unavailable") or {}
    if unavailable:  # the money verdict needs the ranking, the quantile spread and the portfolio
        part = next(iter(unavailable))
        metrics["cannot_judge"] = f"{_PART_WORDS[part]}: {unavailable[part]}"
    model_reason = unavailable.get("ic")
    if model_reason:
        metrics["statistics"] = null_statistics(metrics.get("statistics", {})) | {"unavailable": model_reason}
        if "capture_ratio" in metrics:
            metrics["capture_ratio"] = None
    for name, block in metrics.get("significance", {}).items():
        reason = model_reason or ((metrics.get(name) or {}).get("unavailable") or {}).get("ic")
        if not reason:
            continue
        for label, test in block.items():
            if isinstance(test, Mapping):
                block[label] = null_statistics(test)
        block["verdict"] = Comparison("model", name, f"RankIC on {head}", None, None, True, None, None,
                                      reason=reason).sentence() + "."


def drop_empty_baselines(signals: dict[str, pd.Series], settings: Any) -> tuple[Any, list[str]]:
    """Remove (in place from ``signals``) every baseline with no value on any row, e.g. ``volume`` on data
    without volume or ``low_vol`` with a lookback under its 20-day window; return the settings without them
    and a warning naming them (the model rows are never dropped).

    Args:
        signals: {row name: signal}; settings: ``BacktestSettings`` (``baselines``).
    """
    import dataclasses

    empty = [name for name in settings.baselines if name in signals and signals[name].dropna().empty]
    if not empty:
        return settings, []
    for name in empty:
        del signals[name]
    kept = tuple(b for b in settings.baselines if b not in empty)
    simulate = tuple(n for n in settings.simulate if n not in empty) or ("model",)
    return dataclasses.replace(settings, baselines=kept, simulate=simulate), [
        f"Baseline(s) {', '.join(empty)} skipped: no value on any decision row (no volume in the data, or a lookback "
        "shorter than the baseline's 20-day window); set backtest.baselines to leave them out."]
