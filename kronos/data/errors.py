"""The one error type bad input data raises, with the command that repairs it."""

from __future__ import annotations


class DataValidationError(ValueError):
    """Input data that cannot be trained on or forecast from.

    The message names the file (or source), the column and the first bad row, and says what
    to do, so it can be shown to a user as is (CLI, web UI, training start-up).
    """


def clean_csv_hint(path: object) -> str:
    """The repair command for a CSV file, appended to validation messages."""
    return f"Repair it with: python -m data_pipelines.clean_csv {path} --out <cleaned.csv>"
