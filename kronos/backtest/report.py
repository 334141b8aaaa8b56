"""The backtest report: metrics.json, signals.csv, PNG plots and one self-contained report.html.

Written through :mod:`kronos.reporting` (the one report writer): a temporary directory replaces ``out_dir``
only once complete, so a crash leaves the previous report (or none), never half of one; metrics.json is
strict JSON (a number that cannot be computed is ``null``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from kronos.backtest.analysis_cache import AnalysisCache
from kronos.backtest.performance import ANNUALISATION, COST_GRID_BPS
from kronos.reporting import (cell, html_page, html_table, image_html, new_figure, report_directory, save_figure,
                              write_metrics)
from kronos.verdicts import p_text, permutation_floor

FIGURES = ("cumulative_return", "excess_return", "daily_rank_ic", "quantile_returns", "cumulative_spread")
# Figures drawn whether or not a portfolio was simulated (intraday data has no Qlib portfolio).
SIGNAL_FIGURES = ("daily_rank_ic", "quantile_returns", "cumulative_spread")
_PORTFOLIO_ROWS = (
    ("return before cost, annualised (summed)", "return_without_cost", "annualized_return"),
    ("return after cost, annualised (summed)", "return_with_cost", "annualized_return"),
    ("excess return over the benchmark before cost, annualised (summed)", "excess_return_without_cost",
     "annualized_return"),
    ("excess return over the benchmark after cost, annualised (summed)", "excess_return_with_cost",
     "annualized_return"),
    ("information ratio", "excess_return_without_cost", "information_ratio"),
    ("information ratio (after cost)", "excess_return_with_cost", "information_ratio"),
    ("max drawdown of excess return", "excess_return_without_cost", "max_drawdown"),
    ("max drawdown of excess return (after cost)", "excess_return_with_cost", "max_drawdown"),
)


def _plot_cumulative(portfolios: Mapping[str, pd.DataFrame], benchmark: str, path: Path) -> None:
    """Cumulative (summed, as Qlib accumulates) daily return after cost of each portfolio and the benchmark."""
    fig, ax = new_figure()
    for name, report in portfolios.items():
        ax.plot(report.index, (report["return"] - report["cost"]).cumsum(), label=f"{name} (after cost)")
    first = next(iter(portfolios.values()))
    ax.plot(first.index, first["bench"].cumsum(), label=f"benchmark: {benchmark}", color="black", linestyle="--")
    ax.set(title="Cumulative return vs benchmark", ylabel="cumulative return (sum of daily)")
    fig.autofmt_xdate()
    save_figure(fig, path, ax)


def _plot_excess(portfolios: Mapping[str, pd.DataFrame], benchmark: str, path: Path) -> None:
    """Cumulative excess return over the benchmark, with and without cost."""
    fig, ax = new_figure()
    for name, report in portfolios.items():
        excess = report["return"] - report["bench"]
        line, = ax.plot(report.index, excess.cumsum(), label=f"{name} (no cost)")
        ax.plot(report.index, (excess - report["cost"]).cumsum(), label=f"{name} (after cost)",
                color=line.get_color(), linestyle=":")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title=f"Cumulative excess return over {benchmark}", ylabel="cumulative excess return")
    fig.autofmt_xdate()
    save_figure(fig, path, ax)


def _plot_rank_ic(daily_ics: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Daily RankIC (headline label) of each signal, as bars, with a 20-day rolling mean."""
    fig, ax = new_figure()
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
    save_figure(fig, path, ax)


def _plot_quantiles(factors: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Mean daily headline-label return of each quantile group (bottom to top), bars per signal."""
    fig, ax = new_figure()
    width = 0.8 / max(len(factors), 1)
    for i, (name, daily) in enumerate(factors.items()):
        x = pd.RangeIndex(daily.shape[1]) + (i - (len(factors) - 1) / 2) * width
        ax.bar(x, daily.mean().to_numpy() * 1e4, width=width, color=f"C{i}", label=name)
    first = next(iter(factors.values()))
    ax.set_xticks(range(first.shape[1]), [f"Q{c}" for c in first.columns])
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title="Mean daily return by signal quantile (Q1 lowest signal)", ylabel="bps per day")
    save_figure(fig, path, ax)


def _plot_spread(long_short: Mapping[str, pd.Series], path: Path) -> None:
    """Cumulative (summed) daily return of each signal's long-short quantile portfolio after cost."""
    fig, ax = new_figure()
    for i, (name, daily) in enumerate(long_short.items()):
        ax.plot(daily.index, daily.cumsum(), color=f"C{i}", label=name)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set(title="Cumulative long-short spread (top minus bottom quantile, after cost)",
           ylabel="cumulative return (sum of daily)")
    fig.autofmt_xdate()
    save_figure(fig, path, ax)


def _cell(value: Any) -> str:
    """A value in running text, formatted as the tables format it."""
    return cell(value, "{:.4f}")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table (kronos.reporting.html_table) with floats to 4 decimals."""
    return html_table(header, rows, float_format="{:.4f}")


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


def _nan_for_none(value: Any) -> float:
    """NaN for a statistic the guards nulled (kronos.backtest.guards), else the value."""
    return float("nan") if value is None else value


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
    header = ["signal", "long-short return after cost, ann. (summed)", "long-short IR", "long-short t",
              "long-short break-even bps", "top-k alpha before cost, ann. (summed)", "alpha t", "beta",
              "top-k alpha after cost, ann. (summed)", "t after cost",
              *[f"top-k excess return @{c} bps, ann. (summed)" for c in COST_GRID_BPS],
              "top-k excess return break-even bps"]
    return _table(header, rows)


def _portfolio_html(metrics: Mapping[str, Any]) -> str:
    """The top-k dropout table (one column per simulated signal), or why it was not run."""
    names = [n for n in _rows(metrics) if metrics[n].get("portfolio")]
    if not names:
        return f"<p>Not run: {html.escape(str(metrics.get('portfolio_skipped', 'no portfolio')))}</p>"
    others = metrics.get("portfolio_not_simulated") or []
    note = (f"<p>Not simulated (backtest.simulate): {html.escape(', '.join(others))}; "
            "backtest.simulate=all trades every signal.</p>" if others else "")
    rows = [[title] + [metrics[name]["portfolio"][group][key] for name in names]
            for title, group, key in _PORTFOLIO_ROWS]
    rows.append(["benchmark return, annualised (summed)"]
                + [metrics[n]["portfolio"]["benchmark"]["annualized_return"] for n in names])
    rows.append(["mean daily turnover"] + [metrics[n]["portfolio"]["turnover"] for n in names])
    for key, title in (("blocked_buys_limit_up", "buys blocked at limit-up"),
                       ("clipped_orders", "orders clipped by max_participation"),
                       ("delisted_sales", "names sold on their last trading day")):
        rows.append([title] + [metrics[n]["portfolio"][key] for n in names])
    return _table(["metric"] + names, rows) + note


def _statistics_html(metrics: Mapping[str, Any]) -> str:
    """The headline's bootstrap intervals and permutation p (a bound at its floor of 1 / (draws + 1))."""
    st = metrics.get("statistics", {})
    floor = permutation_floor(st["n_perm"]) if st.get("n_perm") is not None else None
    return (f"<p>Headline RankIC 95 % block-bootstrap interval (by date): {_cell(st.get('rank_ic_ci'))}; "
            f"spread interval: {_cell(st.get('spread_ci'))}; permutation test of the RankIC (instruments shuffled "
            f"within each date, {st.get('n_perm')} times): {html.escape(p_text(st.get('rank_ic_permutation_p'), floor))}. "
            f"Labels masked because the entry was at limit-up: {metrics.get('limit_up', {}).get('labels_masked')}.</p>")


def _bad_prices_html(metrics: Mapping[str, Any]) -> str:
    """The flagged price rows, where there are any."""
    bad = metrics.get("bad_prices")
    if not (bad and bad.get("count")):
        return ""
    return (f"<h2>Flagged price rows: {bad['count']}</h2>"
            + _table(["datetime", "instrument", "return", "change", "reason"],
                     [[e["datetime"], e["instrument"], e["return"], e["change"], e["reason"]] for e in bad["examples"]]))


def _items(entries: Mapping[str, Any] | list[str], css: str = "") -> str:
    """``<li>`` items: ``name: text`` of a mapping (name in bold) or the texts of a list."""
    attr = f' class="{css}"' if css else ""
    if isinstance(entries, Mapping):
        return "".join(f"<li{attr}><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in entries.items())
    return "".join(f"<li{attr}>{html.escape(str(v))}</li>" for v in entries)


def _html(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> str:
    """One self-contained page: the headline lines, warnings, verdicts, the IC, factor, money and
    portfolio tables, the figures as base64 PNG, and the settings."""
    name = html.escape(str(metrics["name"]))
    verdicts = _items([v["verdict"] for v in metrics.get("significance", {}).values()])
    warnings = _items(metrics.get("warnings", []), "warn") + _items(metrics.get("notes", []))
    settings = _table(["setting", "value"], [[k, json.dumps(v)] for k, v in metrics["settings"].items()])
    body = f"""<h1>Kronos backtest: {name}</h1>
<ul class="headline">{_items(metrics.get("headline", []))}</ul>
<p>{metrics['n_forecasts']} forecasts, {metrics['n_instruments']} instruments, decision dates {metrics['start']} to
{metrics['end']}. Market rules: {html.escape(str(metrics.get('region')))}. Benchmark:
<b>{html.escape(str(metrics['benchmark']))}</b>. Qlib TopkDropoutStrategy, trading on day t+1 with day t's signal.
Every annualised number is {html.escape(ANNUALISATION)}, over {metrics.get('bars_per_year', 0):.1f} bars a year
(measured from the data's calendar). Weights: {html.escape(json.dumps(metrics.get("weights") or {}))}.</p>
<h2>Warnings</h2><ul>{warnings or "<li>none</li>"}</ul>
<h2>Does the model beat the baselines?</h2>
<p>Each sentence follows its test: "beats" or "loses to" only where the paired test of the daily difference rejects
at 5 %, otherwise "is not significantly different from".</p><ul>{verdicts}</ul>
<h2>Information coefficient: model vs baselines</h2>
<p>Labels:</p><ul>{_items(metrics["labels"])}</ul><p>Signals:</p><ul>{_items(metrics["signals"])}</ul>
{_ic_table(metrics)}
<p>t: the mean daily (Rank)IC over its standard error; Hansen-Hodrick (uniform weights up to lag overlap - 1,
small-sample degrees of freedom) where consecutive labels overlap.</p>
{_statistics_html(metrics)}
<h2>Factor analysis on {html.escape(metrics['headline_label'])}</h2>
<p>Each day the names with a signal (the decision-time universe) are split into equal groups by the signal (Q1
lowest); a group's return is the mean label of its names, a name whose label is missing (suspended, or its entry at
limit-up) counting 0 (cash that could not be invested, or a position marked at its last price); t per group and
for the spread (top minus bottom); monotonicity: Spearman correlation of the group number with its mean return;
IC decay: RankIC with the label k-1 days later; turnover: share of the top group new each day. Computed in pandas
(not alphalens).</p>
{_factor_table(metrics)}
<h2>Money: long-short quantile portfolio, top-k alpha and excess return</h2>
<p>Long-short (pandas, from signals and realised trade returns): top group long, bottom group short,
equal-weighted, dollar-neutral, costs (mean of open and close cost, one way) on both legs. Top-k alpha: the
intercept of an OLS of the Qlib portfolio's daily return on the benchmark's, with its t. Top-k excess return:
the portfolio's daily return minus the benchmark's; its break-even cost is the one-way cost at which that excess
return is zero. Costs are one way on each day's turnover.</p>
{_money_table(metrics)}
<h2>Top-k dropout portfolio</h2>
{_portfolio_html(metrics)}
{_bad_prices_html(metrics)}
<h2>Figures</h2>{"".join(image_html(path, key) for key, path in figures.items())}
<h2>Settings</h2>{settings}"""
    return html_page(f"Kronos backtest: {metrics['name']}", body)


def _figure(cache: AnalysisCache | None, plot: Callable[..., None], path: Path,
            data: Mapping[str, pd.DataFrame | pd.Series], *args: Any) -> None:
    """Draw ``plot(data, *args, path)``, or write the PNG a cache kept for the same data and drawing code."""
    if cache is None:
        plot(data, *args, path)
        return

    def draw() -> bytes:
        plot(data, *args, path)
        return path.read_bytes()

    png = cache.get(f"figure_{path.stem}", [list(data), *data.values(), list(args)], draw)
    if not path.is_file():
        path.write_bytes(png)


def write_report(out_dir: str | Path, metrics: Mapping[str, Any], signals: pd.DataFrame,
                 portfolios: Mapping[str, pd.DataFrame], daily_ics: Mapping[str, pd.DataFrame], *,
                 factors: Mapping[str, pd.DataFrame], long_short: Mapping[str, pd.Series],
                 figure_cache: AnalysisCache | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
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
        figure_cache: where figures drawn from the same data are kept and read back (None: draw every one).

    Returns:
        (metrics, {figure name: final PNG path}).
    """
    out_dir = Path(out_dir)
    benchmark = str(metrics["benchmark"])
    with report_directory(out_dir, "backtest") as tmp:
        keys = FIGURES if portfolios else SIGNAL_FIGURES
        figures = {key: tmp / f"{key}.png" for key in keys}
        if portfolios:
            _figure(figure_cache, _plot_cumulative, figures["cumulative_return"], portfolios, benchmark)
            _figure(figure_cache, _plot_excess, figures["excess_return"], portfolios, benchmark)
        _figure(figure_cache, _plot_rank_ic, figures["daily_rank_ic"], daily_ics)
        _figure(figure_cache, _plot_quantiles, figures["quantile_returns"], factors)
        _figure(figure_cache, _plot_spread, figures["cumulative_spread"], long_short)
        write_metrics(tmp / "metrics.json", metrics)
        signals.to_csv(tmp / "signals.csv", index=False, float_format="%.10g")
        (tmp / "report.html").write_text(_html(metrics, figures), encoding="utf-8")
    return dict(metrics), {key: out_dir / f"{key}.png" for key in figures}
