"""The one report writer of the stages: figure set-up, HTML tables, embedded images, strict-JSON metrics and
the atomic, logged replacement of a report directory.

``kronos.backtest.report`` and ``kronos.evaluate.report`` keep only what is theirs (their figures and
sections) and write through this module:

- :func:`report_directory`: build the report in a temporary directory that replaces ``out_dir`` only once
  complete (a crash leaves the previous report, or none), and log one line when a previous report was
  replaced;
- :func:`write_metrics`: ``metrics.json`` as strict JSON (:func:`kronos.jsonio.dumps_strict`: NaN and inf
  are ``null``, never the bare ``NaN`` strict parsers refuse);
- :func:`new_figure` / :func:`save_figure`: matplotlib without a display (Agg), one size and resolution;
- :func:`html_table`, :func:`cell`, :func:`image_html`, :func:`html_page`: the self-contained report.html.
"""

from __future__ import annotations

import base64
import contextlib
import html
import logging
import math
import numbers
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # reports are written on servers and in CI: never a display
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from kronos.atomic import atomic_directory  # noqa: E402
from kronos.jsonio import dumps_strict  # noqa: E402

log = logging.getLogger(__name__)
DPI = 110
MISSING = "—"  # a table cell whose value is missing or not finite (null in metrics.json)
STYLE = ("body{font-family:sans-serif;margin:2em auto;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
         "td:first-child,th:first-child{text-align:left}.warn{color:#a00}img{max-width:100%}")


@contextlib.contextmanager
def report_directory(out_dir: str | Path, stage: str) -> Iterator[Path]:
    """Yield a temporary directory whose content replaces ``out_dir`` once the block succeeds.

    When ``out_dir`` already held a report, one INFO line says it was replaced (a re-run is never silent).
    """
    out_dir = Path(out_dir)
    had_report = out_dir.is_dir() and any(out_dir.iterdir())
    with atomic_directory(out_dir) as tmp:
        yield tmp
    if had_report:
        log.info("%s: replaced the previous report in %s", stage, out_dir)


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    """``metrics`` as strict JSON (indent 2, NaN/inf as null, numpy values as Python) at ``path``."""
    Path(path).write_text(dumps_strict(metrics) + "\n", encoding="utf-8")


def new_figure(ncols: int = 1, figsize: tuple[float, float] = (9, 4.5), **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(1, ncols, figsize=figsize, **kwargs)``: (figure, axes as matplotlib returns them)."""
    return plt.subplots(1, ncols, figsize=figsize, **kwargs)


def save_figure(fig: Any, path: Path, axes: Any = None) -> None:
    """Grid and legend on ``axes`` (one Axes or an iterable of them; None: leave the axes as drawn), then write
    the figure as PNG to ``path`` and close it (plots are made in loops over runs)."""
    for ax in ([] if axes is None else ([axes] if hasattr(axes, "grid") else list(axes))):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def cell(value: Any, float_format: str = "{:.4g}") -> str:
    """A table cell as HTML: numbers by ``float_format``, a missing or non-finite one as :data:`MISSING`,
    lists as ``[a, b]`` of formatted items, anything else escaped."""
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
                         and not math.isfinite(float(value))):
        return MISSING
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return float_format.format(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v, float_format) for v in value) + "]"
    return html.escape(str(value))


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], float_format: str = "{:.4g}") -> str:
    """An HTML table from a header and rows of cells (:func:`cell`)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v, float_format)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image_html(path: Path, name: str) -> str:
    """A PNG embedded as base64 (the page stays one file), captioned with ``name`` in words."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    words = html.escape(name.replace("_", " "))
    return (f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{words}</figcaption></figure>")


def html_page(title: str, body: str) -> str:
    """A complete, self-contained HTML page with the reports' shared style."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")
