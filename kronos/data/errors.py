"""The one error type bad input data raises, with the command that repairs it."""

from __future__ import annotations

import shlex

from kronos.errors import KronosUserError

MAX_SHOWN_CHARS = 80  # a quoted user value in a message is cut to this many characters


def quoted(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (a 15 MB cell is never echoed back).

    Every message that quotes user data (cells, column names, keys, paths from a request) goes through this.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text):,} characters)"


class DataValidationError(KronosUserError, ValueError):
    """Input data that cannot be trained on or forecast from.

    The message names the file (or source), the column and the first bad row, and says what
    to do, so it can be shown to a user as is (CLI, web UI, training start-up).
    """


def clean_csv_hint(path: object, *, time_column: str | None = None, symbol_column: str | None = None) -> str:
    """The repair command for a CSV file, appended to validation messages.

    It repeats the column options the failing read used: run without ``--symbol-column``,
    ``clean_csv`` would treat a long multi-symbol file as one series and drop nearly every row
    as a duplicated timestamp.
    """
    cmd = ["python", "-m", "data_pipelines.clean_csv", str(path), "--out", "<cleaned.csv>"]
    if time_column:
        cmd += ["--time-column", time_column]
    if symbol_column:
        cmd += ["--symbol-column", symbol_column]
    return "Repair it with: " + " ".join(a if a == "<cleaned.csv>" else shlex.quote(a) for a in cmd)
