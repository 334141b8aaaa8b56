"""The backtest's words: the model against each baseline, the verdict paragraph and the report's first lines.

Every "model vs baseline" sentence is a :class:`kronos.verdicts.Comparison` (the one builder): "beats" or
"loses to" only where the paired test of the daily difference rejects at 5 %, otherwise "is not
significantly different from". Three comparisons per baseline, each on the same dates for both:

- ranking: the mean daily RankIC on the headline label (paired t of the daily difference; Hansen–Hodrick
  for an overlapping label);
- long-short quantile spread: the mean daily top-minus-bottom return before cost (paired t);
- top-k portfolio: the daily excess return over the benchmark before cost (paired t), shown annualised.

Single-signal claims ("ranks significantly", "a significantly positive spread") use
:func:`kronos.verdicts.significant` (p < 5 % with the sign). Each money line says what it measures: excess
return (portfolio minus benchmark) or alpha (the intercept of the portfolio's daily return regressed on the
benchmark's), before or after cost, annualised by summing daily values
(:data:`kronos.backtest.performance.ANNUALISATION`); the
break-even cost is that of the excess return and sits with the excess-return lines.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from kronos.backtest.metrics import compare, paired_difference
from kronos.verdicts import ALPHA, Comparison, p_text, permutation_floor, significant, stat_text, verdict_text

_NAN = float("nan")


def money_row(row: Mapping[str, Any], label: str = "trade_return") -> dict[str, float]:
    """The headline numbers of one signal row of metrics.json (NaN where a part was not run)."""
    ic = row["ic"][label]
    spread = (row.get("factor") or {}).get("spread", {})
    portfolio = row.get("portfolio") or {}
    alpha = portfolio.get("alpha") or {}
    after = portfolio.get("alpha_after_cost") or {}
    excess = portfolio.get("excess_return_without_cost") or {}
    excess_after = portfolio.get("excess_return_with_cost") or {}
    return {k: _NAN if v is None else v for k, v in {  # None: not computed (kronos.backtest.guards)
        "rank_ic": ic["rank_ic"], "rank_ic_t": ic["rank_ic_t"], "rank_ic_p": ic.get("rank_ic_p", _NAN),
        "spread": spread.get("mean", _NAN), "spread_t": spread.get("t", _NAN), "spread_p": spread.get("p", _NAN),
        "excess": excess.get("annualized_return", _NAN), "excess_t": excess.get("t", _NAN),
        "excess_after_cost": excess_after.get("annualized_return", _NAN),
        "excess_after_cost_t": excess_after.get("t", _NAN),
        "break_even_cost_bps": portfolio.get("break_even_cost_bps", _NAN),
        "alpha": alpha.get("annualized", _NAN), "alpha_t": alpha.get("t", _NAN), "alpha_p": alpha.get("p", _NAN),
        "alpha_after_cost": after.get("annualized", _NAN), "alpha_after_cost_t": after.get("t", _NAN),
        "alpha_after_cost_p": after.get("p", _NAN),
    }.items()}


def _rank_key(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else -math.inf


def best_baseline(metrics: Mapping[str, Any]) -> str | None:
    """The baseline with the highest headline RankIC (None without baselines)."""
    label = metrics["headline_label"]
    names = [n for n in metrics.get("baselines", []) if n in metrics]
    return max(names, key=lambda n: _rank_key(metrics[n]["ic"][label]["rank_ic"]), default=None)


def _excess(report: pd.DataFrame) -> pd.Series:
    """Daily excess return over the benchmark before cost of a Qlib portfolio report."""
    return report["return"] - report["bench"]


def comparisons(model: str, baseline: str, metrics: Mapping[str, Any], *, rank_ic: Mapping[str, float],
                spreads: Mapping[str, pd.Series], overlap: int,
                portfolios: Mapping[str, pd.DataFrame]) -> list[Comparison]:
    """The model against one baseline: ranking, long-short spread and (where simulated) the top-k portfolio.

    Args:
        model, baseline: signal rows of ``metrics`` (their ``ic``, ``factor`` and ``portfolio`` entries).
        rank_ic: :func:`kronos.backtest.metrics.compare` of their daily RankIC on the headline label.
        spreads: {signal: daily long-short quantile spread before cost} (kronos.backtest.factor.spread_series).
        overlap: how many decision dates the headline label spans.
        portfolios: {signal: Qlib daily portfolio report}; empty where no portfolio was simulated.
    """
    label = metrics["headline_label"]
    test = "paired t" if overlap == 1 else "Hansen-Hodrick paired t"
    mine, theirs = money_row(metrics[model], label), money_row(metrics[baseline], label)
    spread = paired_difference(spreads[model], spreads[baseline], overlap)
    out = [
        Comparison(model, baseline, f"mean daily RankIC on {label}", mine["rank_ic"], theirs["rank_ic"], True,
                   rank_ic["t"], rank_ic["p"], test=test),
        Comparison(model, baseline, f"long-short quantile spread before cost, mean daily {label}", mine["spread"],
                   theirs["spread"], True, spread["t"], spread["p"], test=test),
    ]
    if model in portfolios and baseline in portfolios:
        topk = paired_difference(_excess(portfolios[model]), _excess(portfolios[baseline]), 1)
        out.append(Comparison(model, baseline, "top-k excess return over the benchmark before cost, annualised "
                              "by summing", mine["excess"], theirs["excess"], True, topk["t"], topk["p"],
                              test="paired t of the daily difference", value_format="{:+.1%}"))
    return out


def baseline_significance(metrics: Mapping[str, Any], daily_ics: Mapping[str, Mapping[str, pd.DataFrame]],
                          overlaps: Mapping[str, int], spreads: Mapping[str, pd.Series],
                          portfolios: Mapping[str, pd.DataFrame], model: str = "model") -> dict[str, Any]:
    """metrics.json's ``significance``: per baseline, the paired RankIC difference on every label, the
    :func:`comparisons` as records (``comparisons``) and their sentences (``verdict``)."""
    label = metrics["headline_label"]
    out: dict[str, Any] = {}
    for name in metrics.get("baselines", []):
        entry: dict[str, Any] = {lab: compare(daily_ics[model][lab], daily_ics[name][lab], overlaps[lab])
                                 for lab in daily_ics[model]}
        found = comparisons(model, name, metrics, rank_ic=entry[label], spreads=spreads, overlap=overlaps[label],
                            portfolios=portfolios)
        entry["comparisons"] = [c.as_dict() for c in found]
        entry["verdict"] = verdict_text(found)
        out[name] = entry
    return out


def _conclusion(m: Mapping[str, float], permutation_p: float) -> str:
    """What the model's own tests allow it to say: ranking, then money before and after cost."""
    ranks = significant(m["rank_ic_t"], m["rank_ic_p"]) and not permutation_p >= ALPHA
    spread = significant(m["spread_t"], m["spread_p"])
    alpha = significant(m["alpha_t"], m["alpha_p"])
    if not ranks:
        return "It does not rank the traded return significantly (5 %)."
    if spread and alpha:
        text = ("It ranks the traded return significantly and the ranking makes money before cost: a significantly "
                "positive long-short spread and top-k alpha.")
        if not significant(m["alpha_after_cost_t"], m["alpha_after_cost_p"]):
            text += (" After cost the top-k alpha is not significantly positive: it does not pay at these costs "
                     f"(the top-k excess return breaks even at {m['break_even_cost_bps']:.1f} bps one way).")
        return text
    missing = [w for w, ok in (("no significantly positive long-short spread", spread),
                               ("no significantly positive top-k alpha", alpha)) if not ok]
    return (f"It ranks the traded return significantly but with {' and '.join(missing)}: a ranking that does "
            "not make money, not a signal that beats the market or the baselines.")


def money_verdict(metrics: Mapping[str, Any]) -> str:
    """One paragraph on the headline model signal: ranking, then money, then the honest conclusion and the
    model against the best baseline (its :func:`baseline_significance` sentence)."""
    label = metrics["headline_label"]
    if metrics.get("cannot_judge"):  # kronos.backtest.guards: the figures are null with this reason
        return (f"Cannot judge the model's {metrics['signal']} signal on {label} against the market or the baselines: "
                f"{metrics['cannot_judge']}.")
    m = money_row(metrics["model"], label)
    st = metrics.get("statistics", {})
    perm = st.get("rank_ic_permutation_p", _NAN)
    floor = permutation_floor(st["n_perm"]) if st.get("n_perm") is not None else None
    head = (f"The model's {metrics['signal']} signal on {label}: RankIC {m['rank_ic']:+.4f} "
            f"({stat_text(m['rank_ic_t'], m['rank_ic_p'])}; permutation {p_text(perm, floor)}); long-short quantile "
            f"spread before cost {m['spread']:+.5f}/day ({stat_text(m['spread_t'], m['spread_p'])}); top-k alpha "
            f"before cost {m['alpha']:+.1%}/yr summed ({stat_text(m['alpha_t'], m['alpha_p'])}), after cost "
            f"{m['alpha_after_cost']:+.1%}/yr summed.")
    tail = _conclusion(m, perm)
    best = best_baseline(metrics)
    verdict = (metrics.get("significance") or {}).get(best, {}).get("verdict") if best else None
    if verdict:
        tail += f" Against the best baseline by RankIC ({best}): {verdict}"
    return f"{head} {tail}"


def headline_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The first lines of the report and the log: headline RankIC (t), long-short spread (t), the top-k
    excess return before/after cost with its break-even cost, the top-k alpha before/after cost, each for the
    model beside the best baseline and (synthetic) the oracle, then the verdict."""
    label = metrics["headline_label"]
    rows = {"model": money_row(metrics["model"], label)}
    traded = {"model": bool(metrics["model"].get("portfolio"))}
    best = best_baseline(metrics)
    if best is not None:
        rows[f"best baseline {best}"] = money_row(metrics[best], label)
        traded[f"best baseline {best}"] = bool(metrics[best].get("portfolio"))
    if "oracle" in metrics and isinstance(metrics["oracle"], Mapping):
        rows["oracle"] = money_row(metrics["oracle"], label)
        traded["oracle"] = bool(metrics["oracle"].get("portfolio"))

    def line(title: str, fmt: str, keys: tuple[str, ...], topk: bool = False) -> str:
        """One figure per row; a top-k figure only for rows that were simulated (backtest.simulate)."""
        shown = [f"{name} " + fmt.format(*[r[k] for k in keys]) for name, r in rows.items()
                 if traded[name] or not topk]
        skipped = [name for name in rows if topk and not traded[name]]
        return f"{title}: " + " | ".join(shown) + (f" [not simulated: {', '.join(skipped)}]" if skipped else "")

    st = metrics.get("statistics", {})
    ci = [_NAN if v is None else v for v in st.get("rank_ic_ci") or [_NAN, _NAN]]  # None: kronos.backtest.guards
    floor = permutation_floor(st["n_perm"]) if st.get("n_perm") is not None else None
    groups = metrics["model"].get("factor", {}).get("quantiles", "?")
    yearly = "annualised by summing daily returns"
    out = [
        f"Headline signal: {metrics['signal']}, label {label}.",
        line("RankIC (t)", "{:+.4f} ({:.2f})", ("rank_ic", "rank_ic_t"))
        + f"  [model 95 % CI {ci[0]:+.4f}..{ci[1]:+.4f}, permutation "
          f"{p_text(st.get('rank_ic_permutation_p', _NAN), floor)}]",
        line(f"Long-short quantile spread (top minus bottom of {groups} groups), mean daily return before cost (t)",
             "{:+.5f} ({:.2f})", ("spread", "spread_t")),
    ]
    if metrics["model"].get("portfolio"):
        out += [
            line(f"Top-k excess return over the benchmark before cost, {yearly} (t)", "{:+.2%} ({:.2f})",
                 ("excess", "excess_t"), topk=True),
            line(f"Top-k excess return over the benchmark after cost, {yearly} (t)", "{:+.2%} ({:.2f})",
                 ("excess_after_cost", "excess_after_cost_t"), topk=True),
            line("Top-k break-even cost of that excess return, bps one way (negative: below the benchmark before "
                 "any cost)", "{:.1f}", ("break_even_cost_bps",), topk=True),
            line(f"Top-k alpha (intercept on the benchmark) before cost, {yearly} (t)", "{:+.2%} ({:.2f})",
                 ("alpha", "alpha_t"), topk=True),
            line(f"Top-k alpha (intercept on the benchmark) after cost, {yearly} (t)", "{:+.2%} ({:.2f})",
                 ("alpha_after_cost", "alpha_after_cost_t"), topk=True),
        ]
    if metrics.get("capture_ratio") is not None:
        out.append(f"Capture ratio (model RankIC / oracle RankIC): {metrics['capture_ratio']:.3f}")
    out.append(metrics.get("verdict", ""))
    return [x for x in out if x]

