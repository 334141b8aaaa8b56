"""The evaluate report: metrics.json, origins.csv, PNG plots and one self-contained report.html.

Everything is built in a temporary directory that replaces ``out_dir`` only once complete, so a
crash leaves the previous report (or none), never half of one.
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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from kronos.atomic import atomic_directory  # noqa: E402
from kronos.jsonio import dumps_strict  # noqa: E402

FIGURES = ("error_by_horizon", "coverage", "pit", "volatility_scatter", "stylized_facts", "generated_windows")
PER_ORIGIN_CSV = "origins.csv"
VOLATILITY_CSV = "volatility_origins.csv"
# Columns of each task's table (models as rows, as the paper lays them out).
TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "price": ("ic", "rank_ic", "rank_ic_t", "origins"),
    "return": ("ic", "rank_ic", "rank_ic_t", "icir", "dates"),
    "volatility": ("mae", "r2", "qlike", "mz_alpha", "mz_beta", "mz_p", "origins"),
    "generation": ("discriminative_score", "discriminative_accuracy_gap", "predictive_rank_ic", "windows"),
}


def _steps(metrics: Mapping[str, Any]) -> np.ndarray:
    return np.arange(1, int(metrics["horizon"]) + 1)


def _nan(values: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _plot_error_by_horizon(metrics: Mapping[str, Any], path: Path) -> None:
    """MASE and scaled CRPS of every forecaster per horizon step."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = _steps(metrics)
    for name, row in metrics["models"].items():
        curves = row["per_horizon"]
        axes[0].plot(steps, _nan(curves["mase"]), marker="o", label=name)
        axes[1].plot(steps, _nan(curves["scaled_crps"]), marker="o", label=name)
    axes[0].set(title="MASE by horizon step", xlabel="step ahead", ylabel="MASE")
    axes[1].set(title="scaled CRPS by horizon step", xlabel="step ahead", ylabel="CRPS / naive in-sample MAE")
    _finish(fig, axes, path)


def _finish(fig: Any, axes: Any, path: Path) -> None:
    """Grid and legend on every axis, then write the figure to ``path`` and close it."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _probabilistic(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {name: row for name, row in metrics["models"].items() if row.get("pit_histogram") is not None}


def _plot_coverage(metrics: Mapping[str, Any], path: Path) -> None:
    """Calibration: empirical vs nominal coverage of the central intervals, and 80 % coverage by step."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = _probabilistic(metrics)
    levels = sorted(float(k) for k in next(iter(metrics["models"].values()))["coverage"])
    axes[0].plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="nominal")
    steps = _steps(metrics)
    for name, row in rows.items():
        axes[0].plot(levels, [row["coverage"][f"{lv:g}"] for lv in levels], marker="o", label=name)
        by_step = (row["per_horizon"].get("coverage") or {}).get("0.8")
        if by_step is not None:
            axes[1].plot(steps, _nan(by_step), marker="o", label=name)
    axes[1].axhline(0.8, color="grey", linestyle="--", linewidth=0.8, label="nominal 0.8")
    axes[0].set(title="Central interval coverage", xlabel="nominal", ylabel="empirical", xlim=(0, 1), ylim=(0, 1))
    axes[1].set(title="80 % interval coverage by horizon step", xlabel="step ahead", ylabel="empirical", ylim=(0, 1))
    _finish(fig, axes, path)


def _plot_pit(metrics: Mapping[str, Any], path: Path) -> None:
    """PIT histograms of the probabilistic forecasters (flat = calibrated)."""
    rows = _probabilistic(metrics)
    n = max(len(rows), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (name, row) in zip(axes[0], rows.items()):
        hist = _nan(row["pit_histogram"])
        edges = np.linspace(0, 1, len(hist) + 1)
        ax.bar(edges[:-1], hist, width=np.diff(edges), align="edge", edgecolor="white")
        ax.axhline(1.0 / len(hist), color="black", linestyle="--", linewidth=0.8)
        ax.set(title=f"PIT: {name}", xlabel="PIT", ylabel="fraction", xlim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_volatility(points: pd.DataFrame, path: Path) -> None:
    """Predicted vs realised horizon variance per forecaster, log-log, with the diagonal."""
    names = list(dict.fromkeys(points["model"]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False, sharex=True, sharey=True)
    ok = (points["predicted_variance"] > 0) & (points["realised_variance"] > 0)
    lo = float(points.loc[ok, ["predicted_variance", "realised_variance"]].min().min()) if ok.any() else 1e-6
    hi = float(points.loc[ok, ["predicted_variance", "realised_variance"]].max().max()) if ok.any() else 1.0
    for ax, name in zip(axes[0], names):
        sel = ok & (points["model"] == name)
        ax.scatter(points.loc[sel, "predicted_variance"], points.loc[sel, "realised_variance"], s=4, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, linestyle="--")
        ax.set(xscale="log", yscale="log", title=name, xlabel="predicted variance")
    axes[0][0].set_ylabel("realised variance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_facts(generation: Mapping[str, Any], path: Path) -> None:
    """Stylised facts, real vs each generator: |r| autocorrelation by lag and the high-low range quantiles."""
    rows = generation["models"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    first = next(iter(rows.values()))["stylized_facts"]
    lags = first["abs_return_acf"]["lags"]
    axes[0].plot(lags, _nan(first["abs_return_acf"]["real"]), color="black", linewidth=2, marker="o", label="real")
    qs = first["high_low_range"]["quantiles"]
    if first["high_low_range"]["real"] is not None:
        axes[1].plot(qs, first["high_low_range"]["real"], color="black", linewidth=2, marker="o", label="real")
    for name, row in rows.items():
        facts = row["stylized_facts"]
        axes[0].plot(lags, _nan(facts["abs_return_acf"]["generated"]), marker=".", label=name)
        if facts["high_low_range"]["generated"] is not None:
            axes[1].plot(qs, facts["high_low_range"]["generated"], marker=".", label=name)
    axes[0].set(title="autocorrelation of |r| (volatility clustering)", xlabel="lag", ylabel="acf")
    axes[1].set(title="high-low range / lookback volatility", xlabel="quantile", ylabel="log(high/low) / sigma")
    _finish(fig, axes, path)


def _plot_windows(examples: Mapping[str, np.ndarray], path: Path) -> None:
    """Closes of a few origins: the lookback, then the real continuation and each generator's."""
    lookback, ci = int(examples["lookback"]), int(examples["close_index"])
    real = examples["real"]
    names = [k for k in examples if k not in ("real", "lookback", "close_index")]
    n = len(real)
    fig, axes = plt.subplots(1, max(n, 1), figsize=(3.8 * max(n, 1), 3.4), squeeze=False)
    for i, ax in enumerate(axes[0][:n]):
        steps = np.arange(real.shape[1])
        ax.plot(steps[:lookback + 1], real[i, :lookback + 1, ci], color="grey", label="lookback")
        ax.plot(steps[lookback:], real[i, lookback:, ci], color="black", linewidth=2, label="real")
        for name in names:
            ax.plot(steps[lookback - 1:], examples[name][i, lookback - 1:, ci], linewidth=1, label=name)
        ax.axvline(lookback - 0.5, color="grey", linestyle=":", linewidth=0.8)
        ax.set(title=f"origin {i + 1}: close", xlabel="row")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_COLUMNS = ("mae", "mase", "relative_mase", "crps", "scaled_crps", "relative_crps", "wql", "direction_accuracy",
            "direction_t")


def model_rows(models: Mapping[str, Any], relative: bool = True) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the main table (one row per forecaster)."""
    columns = [c for c in _COLUMNS if relative or not c.startswith("relative")]
    levels = list(next(iter(models.values()))["coverage"])
    header = ["model", *columns, *[f"coverage {k}" for k in levels]]
    rows = [[name, *[row.get(c) for c in columns], *[row["coverage"][k] for k in levels]]
            for name, row in models.items()]
    return header, rows


def task_rows(task: str, block: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one task's table (models, then its baselines)."""
    columns = TASK_COLUMNS[task]
    return ["model", *columns], [[name, *[row.get(c) for c in columns]] for name, row in block["models"].items()]


def fact_rows(block: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Stylised facts side by side: one row per fact, real then each generator (distance in brackets)."""
    rows = block["models"]
    names = list(rows)
    first = rows[names[0]]["stylized_facts"]
    header = ["fact", "real", *names]
    out = []
    for fact, cell in first.items():
        def show(value: Any) -> Any:
            if isinstance(value, list):
                return "[" + ", ".join(_fmt(None if v is None else round(v, 3)) for v in value) + "]"
            return value

        line = [fact, show(cell["real"])]
        for name in names:
            facts = rows[name]["stylized_facts"][fact]
            line.append(f"{_fmt(show(facts['generated']))} (d {_fmt(facts['distance'])})")
        out.append(line)
    return header, out


def _task_html(metrics: Mapping[str, Any]) -> list[str]:
    tasks = metrics.get("tasks") or {}
    parts = []
    if "accuracy" in tasks:
        parts.append(f"<p><b>Verdict (accuracy):</b> {html.escape(tasks['accuracy']['verdict'])}</p>")
    for task in TASK_COLUMNS:
        if task not in tasks:
            continue
        block = tasks[task]
        header, rows = task_rows(task, block)
        parts += [f"<h2>Task: {html.escape(task)}</h2>",
                  f"<p><b>Verdict:</b> {html.escape(block['verdict'])}</p>",
                  _table(header, rows),
                  f"<p>Sampling: {html.escape(json.dumps(block['sampling']))}; {block['seconds']} s.</p>"]
        if task == "generation":
            header, rows = fact_rows(block)
            parts += ["<h3>Stylised facts (real vs generated, distance d)</h3>", _table(header, rows)]
    suite = metrics.get("task_suite") or {}
    if suite.get("skipped"):
        parts.append(f"<p>Tasks skipped: {html.escape(json.dumps(suite['skipped']))}</p>")
    return parts


def _html(metrics: Mapping[str, Any], figures: Mapping[str, Path]) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Kronos forecast evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
        ".warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}</style></head><body>",
        "<h1>Forecast evaluation</h1>",
        f"<p>{metrics['origins']} origins ({metrics['series']} series x {metrics['dates']} dates, every "
        f"{metrics['stride']} rows of the {html.escape(str(metrics['split']))} split, "
        f"{html.escape(metrics['period']['first_origin'])} .. {html.escape(metrics['period']['last_origin'])}); "
        f"lookback {metrics['lookback']}, horizon {metrics['horizon']}, {metrics['sample_count']} sample paths per "
        f"origin. Skipped: {html.escape(json.dumps(metrics['skipped']))}.</p>",
    ]
    for warning in metrics.get("warnings", []):
        parts.append(f"<p class='warn'>{html.escape(warning)}</p>")
    header, rows = model_rows(metrics["models"])
    parts += ["<h2>All series</h2>", _table(header, rows),
              "<p>Relative scores below 1 beat the naive forecast; direction accuracy is compared with 0.5.</p>"]
    for group, block in (metrics.get("groups") or {}).items():
        header, rows = model_rows(block["models"], relative=False)
        parts += [f"<h2>Group {html.escape(group)} ({block['origins']} origins, {block['series']} series)</h2>",
                  _table(header, rows)]
    parts += _task_html(metrics)
    weights = metrics.get("weights") or {}
    parts.append(f"<p>Weights of <code>kronos</code>: {html.escape(json.dumps(weights))}</p>")
    for name in FIGURES:
        if name in figures:
            data = base64.b64encode(figures[name].read_bytes()).decode("ascii")
            parts.append(f"<h2>{html.escape(name.replace('_', ' '))}</h2><img src='data:image/png;base64,{data}'>")
    parts.append("<h2>Definitions</h2><ul>")
    parts += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in metrics["definitions"].items()]
    parts.append("</ul></body></html>")
    return "\n".join(parts)


def write_report(out_dir: str | Path, metrics: Mapping[str, Any], per_origin: pd.DataFrame, *,
                 volatility_points: pd.DataFrame | None = None,
                 examples: Mapping[str, np.ndarray] | None = None) -> dict[str, Path]:
    """Write metrics.json, origins.csv, the plots and report.html into ``out_dir`` atomically.

    With the volatility task, ``volatility_points`` (datetime, instrument, model, predicted_variance,
    realised_variance per origin) is written as volatility_origins.csv and plotted; with the generation
    task, ``examples`` (real and generated windows of a few origins) are drawn.

    Returns:
        Figure name -> final path.
    """
    out_dir = Path(out_dir)
    plots = {"error_by_horizon": _plot_error_by_horizon, "coverage": _plot_coverage, "pit": _plot_pit}
    with atomic_directory(out_dir) as tmp:
        (tmp / "metrics.json").write_text(dumps_strict(metrics) + "\n", encoding="utf-8")  # strict: NaN/inf are null
        per_origin.to_csv(tmp / PER_ORIGIN_CSV, index=False, float_format="%.6g")
        figures = {}
        for name, plot in plots.items():
            if name in ("coverage", "pit") and not _probabilistic(metrics):
                continue
            plot(metrics, tmp / f"{name}.png")
            figures[name] = tmp / f"{name}.png"
        if volatility_points is not None and len(volatility_points):
            volatility_points.to_csv(tmp / VOLATILITY_CSV, index=False, float_format="%.6g")
            _plot_volatility(volatility_points, tmp / "volatility_scatter.png")
            figures["volatility_scatter"] = tmp / "volatility_scatter.png"
        generation = (metrics.get("tasks") or {}).get("generation")
        if generation:
            _plot_facts(generation, tmp / "stylized_facts.png")
            figures["stylized_facts"] = tmp / "stylized_facts.png"
        if examples:
            _plot_windows(examples, tmp / "generated_windows.png")
            figures["generated_windows"] = tmp / "generated_windows.png"
        (tmp / "report.html").write_text(_html(metrics, figures), encoding="utf-8")
    return {name: out_dir / path.name for name, path in figures.items()}
