"""The verdict in words and the report's first lines, built from the ranking AND the money.

A signal "works" only when its RankIC is significant, its long-short quantile spread is significantly
positive and its top-k portfolio earns a positive alpha before cost; a significant RankIC without the
money is reported as exactly that.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from kronos.backtest.metrics import T_CRITICAL

_NAN = float("nan")


def money_row(row: Mapping[str, Any], label: str = "trade_return") -> dict[str, float]:
    """The headline numbers of one signal row of metrics.json (NaN where a part was not run)."""
    ic = row["ic"][label]
    factor = row.get("factor") or {}
    portfolio = row.get("portfolio") or {}
    alpha = portfolio.get("alpha") or {}
    after = portfolio.get("alpha_after_cost") or {}
    return {k: _NAN if v is None else v for k, v in {  # None: not computed (kronos.backtest.guards)
        "rank_ic": ic["rank_ic"], "rank_ic_t": ic["rank_ic_t"],
        "spread": factor.get("spread", {}).get("mean", _NAN), "spread_t": factor.get("spread", {}).get("t", _NAN),
        "alpha": alpha.get("annualized", _NAN), "alpha_t": alpha.get("t", _NAN),
        "alpha_after_cost": after.get("annualized", _NAN), "alpha_after_cost_t": after.get("t", _NAN),
        "break_even_cost_bps": portfolio.get("break_even_cost_bps", _NAN),
    }.items()}


def best_baseline(metrics: Mapping[str, Any]) -> str | None:
    """The baseline with the highest headline RankIC (None without baselines)."""
    label = metrics["headline_label"]
    names = [n for n in metrics.get("baselines", []) if n in metrics]
    return max(names, key=lambda n: _finite(metrics[n]["ic"][label]["rank_ic"]), default=None)


def _finite(x: float) -> float:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else -math.inf


def money_verdict(metrics: Mapping[str, Any]) -> str:
    """One paragraph on the headline model signal: ranking, then money, then the honest conclusion."""
    label = metrics["headline_label"]
    if metrics.get("cannot_judge"):  # kronos.backtest.guards: the figures are null with this reason
        return (f"Cannot judge the model's {metrics['signal']} signal on {label} against the market or the baselines: "
                f"{metrics['cannot_judge']}.")
    m = money_row(metrics["model"], label)
    p = metrics.get("statistics", {}).get("rank_ic_permutation_p", _NAN)
    ranks = m["rank_ic_t"] > T_CRITICAL and not p > 0.05
    spread = m["spread_t"] > T_CRITICAL
    alpha = m["alpha"] > 0
    head = (f"The model's {metrics['signal']} signal on {label}: RankIC {m['rank_ic']:+.4f} (t = {m['rank_ic_t']:.2f}, "
            f"permutation p = {p:.3f}); long-short spread {m['spread']:+.5f}/day (t = {m['spread_t']:.2f}); "
            f"top-k alpha before cost {m['alpha']:+.1%}/yr (t = {m['alpha_t']:.2f}), after cost "
            f"{m['alpha_after_cost']:+.1%}/yr.")
    if ranks and spread and alpha:
        tail = "It ranks the traded return significantly and the ranking makes money before cost."
        if not m["alpha_after_cost"] > 0:
            tail += (f" After cost the top-k alpha is gone (break-even {m['break_even_cost_bps']:.1f} bps one way): "
                     "it does not pay at these costs.")
    elif ranks:
        missing = [w for w, ok in (("no significant long-short spread", spread), ("no positive top-k alpha", alpha))
                   if not ok]
        tail = (f"It ranks the traded return significantly but with {' and '.join(missing)}: a ranking that does "
                "not make money, not a signal that beats the market or the baselines.")
    else:
        tail = "It does not rank the traded return significantly."
    best = best_baseline(metrics)
    if best is not None:
        b = money_row(metrics[best], label)
        tail += (f" Best baseline ({best}): RankIC {b['rank_ic']:+.4f} (t = {b['rank_ic_t']:.2f}), spread "
                 f"{b['spread']:+.5f}/day (t = {b['spread_t']:.2f}), top-k alpha {b['alpha']:+.1%}/yr.")
        if b["rank_ic"] >= m["rank_ic"] or b["spread"] >= m["spread"]:
            tail += f" The model does not beat this simple rule: {best} ranks or earns at least as much."
    return f"{head} {tail}"


def headline_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The first lines of the report and the terminal: headline RankIC (t), spread (t), top-k alpha before
    and after cost and the break-even cost of the model, beside the best baseline and (synthetic) the oracle."""
    label = metrics["headline_label"]
    rows = {"model": money_row(metrics["model"], label)}
    best = best_baseline(metrics)
    if best is not None:
        rows[f"best baseline {best}"] = money_row(metrics[best], label)
    if "oracle" in metrics and isinstance(metrics["oracle"], Mapping):
        rows["oracle"] = money_row(metrics["oracle"], label)

    def line(title: str, fmt: str, keys: tuple[str, ...]) -> str:
        return f"{title}: " + " | ".join(f"{name} " + fmt.format(*[r[k] for k in keys]) for name, r in rows.items())

    stats = metrics.get("statistics", {})
    ci = [_NAN if v is None else v for v in stats.get("rank_ic_ci") or [_NAN, _NAN]]  # None: kronos.backtest.guards
    perm = stats.get("rank_ic_permutation_p")
    out = [
        f"Headline signal: {metrics['signal']}, label {label}.",
        line("RankIC (t)", "{:+.4f} ({:.2f})", ("rank_ic", "rank_ic_t"))
        + f"  [model 95 % CI {ci[0]:+.4f}..{ci[1]:+.4f}, permutation p {_NAN if perm is None else perm:.3f}]",
        line(f"Long-short spread top-bottom of {metrics['model'].get('factor', {}).get('quantiles', '?')} groups, "
             "per day (t)", "{:+.5f} ({:.2f})", ("spread", "spread_t")),
        line("Top-k alpha before cost, annualised (t)", "{:+.2%} ({:.2f})", ("alpha", "alpha_t")),
        line("Top-k alpha after cost, annualised (t)", "{:+.2%} ({:.2f})", ("alpha_after_cost", "alpha_after_cost_t")),
        line("Top-k break-even cost, bps one way (negative: loses before any cost)", "{:.1f}",
             ("break_even_cost_bps",)),
    ]
    if metrics.get("capture_ratio") is not None:
        out.append(f"Capture ratio (model RankIC / oracle RankIC): {metrics['capture_ratio']:.3f}")
    out.append(metrics.get("verdict", ""))
    return [x for x in out if x]
