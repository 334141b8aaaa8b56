"""kronos.reporting, the one report writer: strict JSON, tables, embedded images, a logged replacement."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from kronos.reporting import (MISSING, cell, html_page, html_table, image_html, new_figure, report_directory,
                              save_figure, write_metrics)


def _refuse(name: str) -> None:
    raise ValueError(f"not strict JSON: {name}")


def test_metrics_are_strict_json_with_null_for_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_metrics(path, {"ic": float("nan"), "t": np.float64("inf"), "days": np.int64(3), "ci": (np.float32(0.5), None)})
    parsed = json.loads(path.read_text(), parse_constant=_refuse)
    assert parsed == {"ic": None, "t": None, "days": 3, "ci": [0.5, None]}


def test_cells_and_tables() -> None:
    assert cell(float("nan")) == MISSING and cell(None) == MISSING and cell(np.float64("inf")) == MISSING
    assert cell(0.123456) == "0.1235" and cell(0.123456, "{:.2f}") == "0.12" and cell(7) == "7"
    assert cell([0.1, float("nan")], "{:.1f}") == f"[0.1, {MISSING}]" and cell("<b>") == "&lt;b&gt;"
    table = html_table(["a", "b"], [["x", 1.5]])
    assert table == "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>x</td><td>1.5</td></tr></tbody></table>"
    assert html_page("t<1>", "<p>x</p>").startswith("<!doctype html>") and "t&lt;1&gt;" in html_page("t<1>", "")


def test_figures_are_png_and_embedded(tmp_path: Path) -> None:
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], label="line")
    save_figure(fig, tmp_path / "f.png", ax)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tag = image_html(tmp_path / "f.png", "daily_rank_ic")
    assert tag.count("data:image/png;base64,") == 1 and "<figcaption>daily rank ic</figcaption>" in tag


def test_a_rerun_that_replaces_a_report_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "exp" / "backtest"
    with caplog.at_level(logging.INFO, logger="kronos.reporting"):
        with report_directory(out, "backtest") as tmp:
            (tmp / "a.txt").write_text("first")
        assert not [r for r in caplog.records if "replaced" in r.getMessage()]  # nothing was there
        with report_directory(out, "backtest") as tmp:
            (tmp / "a.txt").write_text("second")
    lines = [r.getMessage() for r in caplog.records if "replaced" in r.getMessage()]
    assert lines == [f"backtest: replaced the previous report in {out}"]
    assert (out / "a.txt").read_text() == "second"
    with pytest.raises(RuntimeError), report_directory(out, "backtest") as tmp:
        raise RuntimeError("crash")
    assert (out / "a.txt").read_text() == "second"  # a crash keeps the previous report
