"""The backtest report: metrics.json, signals.csv, PNG plots and one self-contained report.html.

Everything is written into a temporary directory that replaces ``out_dir`` only once complete,
so a crash leaves the previous report (or none), never half of one.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import pandas as pd  # noqa: E402

from kronos.atomic import atomic_directory  # noqa: E402
from kronos.jsonio import dumps_strict  # noqa: E402
from kronos.backtest.performance import COST_GRID_BPS  # noqa: E402

FIGURES = ("cumulative_return", "excess_return", "daily_rank_ic", "quantile_returns", "cumulative_spread")
# Figures drawn whether or not a portfolio was simulated (intraday data has no Qlib portfolio).
SIGNAL_FIGURES = ("daily_rank_ic", "quantile_returns", "cumulative_spread")
_PORTFOLIO_ROWS = (
    ("annualised return", "return_without_cost", "annualized_return"),
    ("annualised return (after cost)", "return_with_cost", "annualized_return"),
    ("excess return, annualised", "excess_return_without_cost", "annualized_return"),
    ("excess return after cost, annualised", "excess_return_with_cost", "annualized_return"),
    ("information ratio", "excess_return_without_cost", "information_ratio"),
    ("information ratio (after cost)", "excess_return_with_cost", "information_ratio"),
    ("max drawdown of excess return", "excess_return_without_cost", "max_drawdown"),
    ("max drawdown of excess return (after cost)", "excess_return_with_cost", "max_drawdown"),
)


def _plot_cumulative(portfolios: Mapping[str, pd.DataFrame], benchmark: str, path: Path) -> None:
    """Cumulative (summed, as Qlib accumulates) daily return after cost of each portfolio and the benchmark."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, report in portfolios.items():
        ax.plot(report.index, (report["return"] - report["cost"]).cumsum(), label=f"{name} (after cost)")
    first = next(iter(portfolios.values()))
    ax.plot(first.index, first["bench"].cumsum(), label=f"benchmark: {benchmark}", color="black", linestyle="--")
    ax.set(title="Cumulative return vs benchmark", ylabel="cumulative return (sum of daily)")
    fig.autofmt_xdate()
    _finish(fig, ax, path)


def _plot_excess(portfolios: Mapping[str, pd.DataFrame], benchmark: str, path: Path) -> None:
    """Cumulative excess return over the benchmark, with and without cost."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, report in portfolios.items():
        excess = report["return"] - report["bench"]
        line, = ax.plot(report.index, excess.cumsum(), label=f"{name} (no cost)")
        ax.plot(report.index, (excess - report["cost"]).cumsum(), label=f"{name} (after cost)",
                color=line.get_color(), linestyle=":")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title=f"Cumulative excess return over {benchmark}", ylabel="cumulative excess return")
    fig.autofmt_xdate()
    _finish(fig, ax, path)


def _plot_rank_ic(daily_ics: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Daily RankIC (headline label) of each signal, as bars, with a 20-day rolling mean."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(daily_ics), 1)
    for i, (name, daily) in enumerate(daily_ics.items()):
        x = pd.RangeIndex(len(daily)) + (i - (len(daily_ics) - 1) / 2) * width
        ax.bar(x, daily["rank_ic"], width=width, alpha=0.45, color=f"C{i}",
               label=f"{name} (mean {daily['rank_ic'].mean():.3f})")
        ax.plot(pd.RangeIndex(len(daily)), daily["rank_ic"].rolling(20, min_periods=1).mean(), color=f"C{i}",
                label=f"{name} 20-day mean")
    longest = max(daily_ics.values(), key=len)
    ticks = list(range(0, len(longest), max(len(longest) // 8, 1)))
    ax.set_xticks(ticks, [longest.index[t].strftime("%Y-%m-%d") for t in ticks], rotation=30, ha="right")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title="Daily RankIC against the headline label", ylabel="RankIC")
    _finish(fig, ax, path)


def _plot_quantiles(factors: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Mean daily headline-label return of each quantile group (bottom to top), bars per signal."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(factors), 1)
    for i, (name, daily) in enumerate(factors.items()):
        x = pd.RangeIndex(daily.shape[1]) + (i - (len(factors) - 1) / 2) * width
        ax.bar(x, daily.mean().to_numpy() * 1e4, width=width, color=f"C{i}", label=name)
    first = next(iter(factors.values()))
    ax.set_xticks(range(first.shape[1]), [f"Q{c}" for c in first.columns])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title="Mean daily return by signal quantile (Q1 lowest signal)", ylabel="bps per day")
    _finish(fig, ax, path)


def _plot_spread(long_short: Mapping[str, pd.Series], path: Path) -> None:
    """Cumulative (summed) daily return of each signal's long-short quantile portfolio after cost."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, daily) in enumerate(long_short.items()):
        ax.plot(daily.index, daily.cumsum(), color=f"C{i}", label=name)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title="Cumulative long-short spread (top minus bottom quantile, after cost)",
           ylabel="cumulative return (sum of daily)")
    fig.autofmt_xdate()
    _finish(fig, ax, path)


def _finish(fig: plt.Figure, ax: plt.Axes, path: Path) -> None:
    """Grid, legend, save as PNG and free the figure (plots are made in loops over runs)."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _nan_for_none(value: Any) -> float:
    """NaN for a statistic the guards nulled (kronos.backtest.guards), else the value."""
    return float("nan") if value is None else value


def _fmt(value: Any) -> str:
    """A table cell: floats to 4 decimals, everything else HTML-escaped."""
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table from a header and rows of cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rows(metrics: Mapping[str, Any]) -> list[str]:
    """Every traded signal row: the model's signals, the baselines, the oracle where known."""
    return [*metrics.get("model_signals", ["model"]), *metrics.get("baselines", []),
            *(["oracle"] if isinstance(metrics.get("oracle"), Mapping) else [])]


def _signal_names(metrics: Mapping[str, Any]) -> list[str]:
    """Every signal row (:func:`_rows`), then any diagnostics (anchor_gap, model_ex_gap), as present."""
    return _rows(metrics) + [n for n in ("anchor_gap", "model_ex_gap") if n in metrics]


def _ic_table(metrics: Mapping[str, Any]) -> str:
    """Model vs baselines: one row per (label, signal), headline label first, with t-statistics and days."""
    labels = list(metrics["labels"])
    header = ["label", "signal", "IC", "ICIR", "IC t", "RankIC", "RankICIR", "RankIC t", "days"]
    rows = []
    for label in labels:
        overlap = int(metrics.get("label_overlap", {}).get(label, 1))
        title = f"{label}{' (headline)' if label == metrics['headline_label'] else ''}"
        title += f" [Hansen-Hodrick, overlap {overlap}]" if overlap > 1 else ""
        for name in _signal_names(metrics):
            s = metrics[name]["ic"][label]
            rows.append([title, name, s["ic"], s["icir"], s["ic_t"], s["rank_ic"], s["rank_icir"], s["rank_ic_t"],
                         s["days"]])
    return _table(header, rows)


def _factor_table(metrics: Mapping[str, Any]) -> str:
    """Per signal: quantile returns bottom to top (bps/day, with t), spread, monotonicity, decay, turnover."""
    names = _rows(metrics)
    q = metrics["model"]["factor"]["quantiles"]
    header = ["signal"] + [f"Q{i} bps/day (t)" for i in range(1, q + 1)] + [
        "spread bps/day", "spread t", "monotonicity", "IC decay (lags 1..H)", "autocorrelation", "top turnover"]
    rows = []
    for n in names:
        f = metrics[n]["factor"]
        v = _nan_for_none  # None: not computed (kronos.backtest.guards; the reason is in the warnings)
        cells = [f"{v(r) * 1e4:+.2f} ({v(t):.1f})" for r, t in zip(f["quantile_returns"], f["quantile_t"])]
        rows.append([n, *cells, v(f["spread"]["mean"]) * 1e4, f["spread"]["t"], f["monotonicity"],
                     " ".join(f"{v(x):+.3f}" for x in f["ic_decay"]), f["autocorrelation"], f["turnover"]])
    return _table(header, rows)


def _money_table(metrics: Mapping[str, Any]) -> str:
    """Per signal: long-short portfolio, top-k alpha before/after cost, cost grid and break-even."""
    names = _rows(metrics)
    rows = []
    for n in names:
        ls, pf = metrics[n]["long_short"], metrics[n].get("portfolio") or {}
        alpha, after = pf.get("alpha", {}), pf.get("alpha_after_cost", {})
        grid = pf.get("excess_return_by_cost_bps", {})
        rows.append([n, ls["annualized_return"], ls["information_ratio"], ls["t"], ls["break_even_cost_bps"],
                     alpha.get("annualized", "-"), alpha.get("t", "-"), alpha.get("beta", "-"),
                     after.get("annualized", "-"), after.get("t", "-"),
                     *[grid.get(str(c), "-") for c in COST_GRID_BPS], pf.get("break_even_cost_bps", "-")])
    header = ["signal", "long-short ann. return (after cost)", "long-short IR", "long-short t",
              "long-short break-even bps", "top-k alpha", "alpha t", "beta", "alpha after cost", "t after cost",
              *[f"top-k excess @{c} bps" for c in COST_GRID_BPS], "top-k break-even bps"]
    return _table(header, rows)


def _html(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> str:
    """One self-contained page: the headline lines, warnings, verdicts, the IC, factor, money and
    portfolio tables, the figures as base64 PNG, and the settings."""
    names = _rows(metrics)
    if all(metrics[n].get("portfolio") for n in names):
        pf_rows = [[title] + [metrics[name]["portfolio"][group][key] for name in names]
                   for title, group, key in _PORTFOLIO_ROWS]
        pf_rows.append(["benchmark annualised return"]
                       + [metrics[n]["portfolio"]["benchmark"]["annualized_return"] for n in names])
        pf_rows.append(["mean daily turnover"] + [metrics[n]["portfolio"]["turnover"] for n in names])
        for key, title in (("blocked_buys_limit_up", "buys blocked at limit-up"),
                           ("clipped_orders", "orders clipped by max_participation"),
                           ("delisted_sales", "names sold on their last trading day")):
            pf_rows.append([title] + [metrics[n]["portfolio"][key] for n in names])
        portfolio = _table(["metric"] + names, pf_rows)
    else:
        portfolio = f"<p>Not run: {html.escape(str(metrics.get('portfolio_skipped', 'no portfolio')))}</p>"
    images = "".join(
        f'<figure><img alt="{key}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'
        f"<figcaption>{key.replace('_', ' ')}</figcaption></figure>" for key, path in figures.items())
    settings = _table(["setting", "value"], [[k, json.dumps(v)] for k, v in metrics["settings"].items()])
    warnings = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in metrics.get("warnings", []))
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in metrics.get("notes", []))
    verdicts = "".join(f"<li>{html.escape(v['verdict'])}</li>" for v in metrics.get("significance", {}).values())
    labels = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in metrics["labels"].items())
    signals = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in metrics["signals"].items())
    bad = metrics.get("bad_prices")
    bad_html = ""
    if bad and bad.get("count"):
        bad_html = (f"<h2>Flagged price rows: {bad['count']}</h2>"
                    + _table(["datetime", "instrument", "return", "change", "reason"],
                             [[e["datetime"], e["instrument"], e["return"], e["change"], e["reason"]]
                              for e in bad["examples"]]))
    weights = metrics.get("weights") or {}
    headline = "".join(f"<li>{html.escape(line)}</li>" for line in metrics.get("headline", []))
    st = metrics.get("statistics", {})
    stats_html = (f"<p>Headline RankIC 95 % block-bootstrap interval (by date): {_fmt(st.get('rank_ic_ci'))}; "
                  f"spread interval: {_fmt(st.get('spread_ci'))}; permutation p-value of the RankIC (instruments "
                  f"shuffled within each date, {st.get('n_perm')} times): {_fmt(st.get('rank_ic_permutation_p'))}. "
                  f"Labels masked because the entry was at limit-up: {metrics.get('limit_up', {}).get('labels_masked')}."
                  "</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kronos backtest: {html.escape(str(metrics['name']))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.warn{{color:#a00}}img{{max-width:100%}}</style></head><body>
<h1>Kronos backtest: {html.escape(str(metrics['name']))}</h1>
<ul class="headline">{headline}</ul>
<p>{metrics['n_forecasts']} forecasts, {metrics['n_instruments']} instruments, decision dates {metrics['start']} to
{metrics['end']}. Market rules: {html.escape(str(metrics.get('region')))}. Benchmark:
<b>{html.escape(str(metrics['benchmark']))}</b>. Qlib TopkDropoutStrategy, trading on day t+1 with day t's signal;
returns accumulated by summation (Qlib's convention), annualised over {metrics.get('bars_per_year', 0):.1f} bars a year
(measured from the data's calendar).
Weights: {html.escape(json.dumps(weights))}.</p>
<h2>Warnings</h2><ul>{warnings or "<li>none</li>"}{notes}</ul>
<h2>Does the model beat the baselines?</h2><ul>{verdicts}</ul>
<h2>Information coefficient: model vs baselines</h2>
<p>Labels:</p><ul>{labels}</ul><p>Signals:</p><ul>{signals}</ul>
{_ic_table(metrics)}
<p>t: the mean daily (Rank)IC over its standard error; Hansen-Hodrick (uniform weights up to lag overlap - 1,
small-sample degrees of freedom) where consecutive labels overlap. |t| &gt; 1.96 is significant at 5 %.</p>
{stats_html}
<h2>Factor analysis on {html.escape(metrics['headline_label'])}</h2>
<p>Each day the names are split into equal groups by the signal (Q1 lowest); a group's return is the mean label of
its names; t per group and for the spread (top minus bottom); monotonicity: Spearman correlation of the group number
with its mean return; IC decay: RankIC with the label k-1 days later; turnover: share of the top group new each day.
Computed in pandas (not alphalens).</p>
{_factor_table(metrics)}
<h2>Money: long-short quantile portfolio and top-k alpha</h2>
<p>Long-short (pandas, from signals and realised trade returns): top group long, bottom group short,
equal-weighted, dollar-neutral, costs (mean of open and close cost, one way) on both legs. Top-k alpha: OLS of the
Qlib portfolio's daily return on the benchmark's, annualised, with its t. Costs are one way on each day's turnover.</p>
{_money_table(metrics)}
<h2>Top-k dropout portfolio</h2>
{portfolio}
{bad_html}
<h2>Figures</h2>{images}
<h2>Settings</h2>{settings}
</body></html>
"""


def write_report(out_dir: str | Path, metrics: Mapping[str, Any], signals: pd.DataFrame,
                 portfolios: Mapping[str, pd.DataFrame], daily_ics: Mapping[str, pd.DataFrame], *,
                 factors: Mapping[str, pd.DataFrame], long_short: Mapping[str, pd.Series],
                 ) -> tuple[dict[str, Any], dict[str, Path]]:
    """Write the report directory atomically.

    Args:
        out_dir: target directory (replaced as a whole).
        metrics: JSON-serialisable metrics; must hold ``name``, ``benchmark``, ``signals``, ``settings``,
            ``headline_label``, ``labels``, ``baselines``, ``n_forecasts``, ``n_instruments``, ``start``,
            ``end`` and per signal name an ``ic`` and a ``portfolio`` entry (see ``run_backtest``).
        signals: one row per (datetime, instrument) with the signals, labels and predicted closes.
        portfolios: {signal name: Qlib daily portfolio report}; empty when the portfolio was skipped
            (intraday data), leaving the IC tables and the RankIC plot.
        daily_ics: {signal name: daily IC frame (``ic``, ``rank_ic``) for the headline label}.
        factors: {signal name: daily quantile-group returns [dates x groups]} (kronos.backtest.factor).
        long_short: {signal name: daily long-short return after cost} (kronos.backtest.performance).

    Returns:
        (metrics, {figure name: final PNG path}).
    """
    out_dir = Path(out_dir)
    benchmark = str(metrics["benchmark"])
    with atomic_directory(out_dir) as tmp:
        keys = FIGURES if portfolios else SIGNAL_FIGURES
        figures = {key: tmp / f"{key}.png" for key in keys}
        if portfolios:
            _plot_cumulative(portfolios, benchmark, figures["cumulative_return"])
            _plot_excess(portfolios, benchmark, figures["excess_return"])
        _plot_rank_ic(daily_ics, figures["daily_rank_ic"])
        _plot_quantiles(factors, figures["quantile_returns"])
        _plot_spread(long_short, figures["cumulative_spread"])
        (tmp / "metrics.json").write_text(dumps_strict(metrics) + "\n", encoding="utf-8")  # strict: NaN/inf are null
        signals.to_csv(tmp / "signals.csv", index=False, float_format="%.10g")
        (tmp / "report.html").write_text(_html(metrics, figures), encoding="utf-8")
    return dict(metrics), {key: out_dir / f"{key}.png" for key in figures}
