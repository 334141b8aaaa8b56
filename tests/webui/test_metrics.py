"""Scores beside the chart: the model (median of its sample paths) and the naive forecast, through
kronos.scores; the same samples give the same CRPS here and in the evaluate stage."""

from __future__ import annotations

import numpy as np
import pytest

from kronos import scores
from kronos.evaluate.scoring import score_paths
from kronos.webui.metrics import score_forecast


def test_scores_only_the_rows_with_an_actual() -> None:
    last = 10.0
    predicted = np.array([[11.0, 9.0, 10.5, 50.0]])  # one path; the 4th step has no actual: must not count
    actual = np.array([12.0, 8.0, 9.0])
    got = score_forecast(last, predicted, actual)
    assert got["rows"] == 3
    # |11-12|, |9-8|, |10.5-9|; moves up/down/up vs up/down/down: two of three signs right.
    assert got["model"]["mae_close"] == pytest.approx((1 + 1 + 1.5) / 3)
    assert got["model"]["crps_close"] == pytest.approx(got["model"]["mae_close"])  # one path: CRPS = MAE
    assert got["model"]["direction_accuracy"] == pytest.approx(2 / 3)
    # Naive predicts "no move": it has no direction to score (n/a), not 0 % (the old sign(0) artefact).
    assert got["naive"]["mae_close"] == pytest.approx((2 + 2 + 1) / 3)
    assert got["naive"]["crps_close"] == pytest.approx(got["naive"]["mae_close"])
    assert got["naive"]["direction_accuracy"] is None
    assert got["naive"]["direction_steps"] == 0
    assert "persistence" not in got


def test_point_forecast_is_the_median_and_crps_is_fair() -> None:
    samples = np.array([[10.0, 10.0], [11.0, 12.0], [12.0, 20.0], [13.0, 8.0]])  # S=4, H=2
    actual = np.array([11.0, 9.0])
    got = score_forecast(10.0, samples, actual)
    median = np.array([11.5, 11.0])  # not the mean (11.5, 12.5)
    assert got["point"] == "median of the sample paths"
    assert got["model"]["mae_close"] == pytest.approx(np.mean(np.abs(median - actual)))
    s = 4
    by_hand = [np.abs(samples[:, k] - actual[k]).mean()
               - np.abs(samples[:, k, None] - samples[None, :, k]).sum() / (2 * s * (s - 1)) for k in range(2)]
    assert got["model"]["crps_close"] == pytest.approx(np.mean(by_hand))


def test_band_coverage_is_read_from_the_pit() -> None:
    samples = np.arange(1.0, 10.0)[:, None].repeat(3, axis=1)  # 9 samples 1..9 at each of 3 steps
    actual = np.array([5.0 + 0.5, 0.5, 9.5])  # PIT = 5/10, 0/10 + U/10, 9/10 + U/10
    got = score_forecast(5.0, samples, actual, band=(0.1, 0.9))
    assert got["band"]["nominal"] == pytest.approx(0.8)
    assert got["band"]["coverage"] == pytest.approx(1 / 3)  # only the middle one is inside [0.1, 0.9]


def test_same_samples_same_crps_in_web_ui_and_evaluate() -> None:
    """Issue 17: one CRPS. (The CLI prints forecasts and scores nothing, so it has no CRPS to compare.)"""
    rng = np.random.default_rng(0)
    samples = 100 + rng.normal(size=(8, 5))  # [S, H]
    actual = 100 + rng.normal(size=5)
    hist = 100 + rng.normal(size=(1, 20))
    web = score_forecast(float(hist[0, -1]), samples, actual)["model"]["crps_close"]
    evaluate = score_paths(samples[None], hist, actual[None], coverage_levels=(0.8,), quantile_levels=(0.5,),
                           rng=np.random.default_rng(1)).crps
    assert evaluate.shape == (1, 5)
    assert web == pytest.approx(float(evaluate.mean()), rel=1e-12)
    assert web == pytest.approx(float(scores.crps_samples(samples.T, actual).mean()), rel=1e-12)
