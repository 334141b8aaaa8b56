"""The evaluate report's own tables (kronos.evaluate.report over kronos.reporting)."""

from __future__ import annotations

from kronos.evaluate.report import fact_rows, task_rows
from kronos.reporting import MISSING, html_table


def test_stylised_facts_side_by_side_with_distances() -> None:
    facts = {"abs_return_acf": {"real": [0.31234, None], "generated": [0.2, 0.1], "distance": 0.05},
             "kurtosis": {"real": 6.0, "generated": float("nan"), "distance": None}}
    header, rows = fact_rows({"models": {"kronos": {"stylized_facts": facts}}})
    assert header == ["fact", "real", "kronos"]
    assert rows[0] == ["abs_return_acf", f"[0.312, {MISSING}]", "[0.2, 0.1] (d 0.05)"]
    assert rows[1] == ["kurtosis", 6.0, f"{MISSING} (d {MISSING})"]
    assert "<td>6</td>" in html_table(header, rows)


def test_task_rows_show_missing_values_as_missing() -> None:
    header, rows = task_rows("return", {"models": {"kronos": {"ic": 0.1, "rank_ic": None, "rank_ic_t": float("nan")}}})
    assert header[:3] == ["model", "ic", "rank_ic"] and rows[0][:3] == ["kronos", 0.1, None]
    assert html_table(header, rows).count(MISSING) == len(header) - 2  # every column but model and ic
