"""Scores beside the chart: MAE and direction accuracy, for the model and for persistence."""

from __future__ import annotations

import numpy as np
import pytest

from kronos.webui.metrics import compare_with_persistence


def test_scores_only_the_rows_with_an_actual() -> None:
    last = 10.0
    predicted = np.array([11.0, 9.0, 10.5, 50.0])  # the 4th step has no actual: must not count
    actual = np.array([12.0, 8.0, 9.0])
    got = compare_with_persistence(last, predicted, actual)
    assert got["rows"] == 3
    # |11-12|, |9-8|, |10.5-9|; moves up/down/up vs up/down/down: two of three signs right.
    assert got["model"]["mae_close"] == pytest.approx((1 + 1 + 1.5) / 3)
    assert got["model"]["direction_accuracy"] == pytest.approx(2 / 3)
    # Persistence predicts "no move": it has no direction to score (n/a), not 0 % (the old sign(0) artefact).
    assert got["persistence"]["mae_close"] == pytest.approx((2 + 2 + 1) / 3)
    assert got["persistence"]["direction_accuracy"] is None
    assert got["persistence"]["direction_steps"] == 0
