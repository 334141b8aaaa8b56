"""Score definitions (kronos.scores) against closed forms and hand-computed examples, as evaluate uses them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from kronos import scores as m
from kronos.evaluate.baselines import drift_paths, hist_vol_paths, naive_paths
from kronos.evaluate.scoring import direction_t_by_date, score_paths, summarise

LEVELS = (0.5, 0.8, 0.9)
QUANTILES = (0.1, 0.5, 0.9)


def gaussian_crps(mu: float, sigma: float, y: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(mu, sigma^2) at y (Gneiting & Raftery 2007)."""
    z = (y - mu) / sigma
    return sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))


def test_crps_matches_gaussian_closed_form_with_many_samples() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = 1.5, 2.0
    y = np.array([-3.0, 0.0, 1.5, 2.2, 7.0])
    samples = rng.normal(mu, sigma, size=(len(y), 40_000))
    got = m.crps_samples(samples, y)
    np.testing.assert_allclose(got, gaussian_crps(mu, sigma, y), rtol=0.01, atol=0.01)


def test_fair_crps_is_unbiased_for_few_samples() -> None:
    """With S = 4 samples the fair estimator averages to the true CRPS; the plain one overstates it
    by E|X - X'| / (2 S) = sigma / (sqrt(pi) S)."""
    rng = np.random.default_rng(1)
    reps, s, y = 100_000, 4, 0.3
    samples = rng.standard_normal((reps, s))
    fair = m.crps_samples(samples, np.full(reps, y)).mean()
    truth = float(gaussian_crps(0.0, 1.0, np.array([y]))[0])
    assert abs(fair - truth) < 0.01
    plain = np.abs(samples - y).mean(axis=1) - np.abs(samples[:, :, None] - samples[:, None, :]).sum(axis=(1, 2)) / (2 * s * s)
    assert plain.mean() - truth == pytest.approx(1 / (math.sqrt(math.pi) * s), abs=0.01)


def test_crps_sorted_identity_equals_pairwise_sum() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 9)), rng.normal(size=7)
    s = x.shape[1]
    brute = np.abs(x - y[:, None]).mean(1) - np.abs(x[:, :, None] - x[:, None, :]).sum((1, 2)) / (2 * s * (s - 1))
    np.testing.assert_allclose(m.crps_samples(x, y), brute, rtol=1e-12)
    # A single path is a point forecast: CRPS = absolute error.
    np.testing.assert_allclose(m.crps_samples(x[:, :1], y), np.abs(x[:, 0] - y))


def _score(paths: np.ndarray, hist: np.ndarray, future: np.ndarray) -> dict:
    sc = score_paths(paths, hist, future, coverage_levels=LEVELS, quantile_levels=QUANTILES,
                     rng=np.random.default_rng(0))
    return summarise(sc, future, slice(None), coverage_levels=LEVELS, quantile_levels=QUANTILES, pit_bins=10)


def test_mae_mase_and_direction_on_a_hand_example() -> None:
    hist = np.array([[10.0, 11.0, 10.0, 12.0]])      # one-step naive in-sample MAE = (1 + 1 + 2) / 3 = 4/3
    future = np.array([[13.0, 11.0]])
    rng = np.random.default_rng(0)
    naive = _score(naive_paths(hist, 2, 1, rng), hist, future)
    assert naive["mae"] == pytest.approx(1.0)           # |12-13|, |12-11|
    assert naive["mase"] == pytest.approx(0.75)         # 1 / (4/3)
    assert naive["crps"] == pytest.approx(1.0)          # a point forecast's CRPS is its absolute error
    assert math.isnan(naive["direction_accuracy"])      # naive predicts no change: no direction, never 0 %
    assert naive["direction_n"] == 0
    assert naive["coverage"] == {"0.5": None, "0.8": None, "0.9": None}
    drift = _score(drift_paths(hist, 2, 1, rng), hist, future)   # 12 + h * 2/3 -> 12.667, 13.333
    assert drift["mae"] == pytest.approx((1 / 3 + 7 / 3) / 2)
    assert drift["mase"] == pytest.approx(1.0)
    assert drift["direction_accuracy"] == pytest.approx(0.5)     # up/up hit, up/down miss
    assert drift["per_horizon"]["mae"] == pytest.approx([1 / 3, 7 / 3])


def test_weighted_quantile_loss_hand_example() -> None:
    y = np.array([10.0, 20.0])
    q = np.array([[8.0, 10.0, 12.0], [18.0, 22.0, 25.0]])
    # pinball: q=0.1: 0.1*2 + 0.1*2 = 0.4; q=0.5: 0 + 0.5*2 = 1; q=0.9: 0.1*2 + 0.1*5 = 0.7
    expected = np.mean([2 * 0.4 / 30, 2 * 1.0 / 30, 2 * 0.7 / 30])
    assert m.weighted_quantile_loss(q, y, QUANTILES) == pytest.approx(expected)


def test_geometric_mean_ratio_per_series() -> None:
    model = np.array([1.0, 3.0, 2.0, np.nan])
    ref = np.array([2.0, 2.0, 1.0, 5.0])
    series = np.array(["a", "a", "b", "b"])
    # a: 2 / 2 = 1; b: 2 / 1 = 2 (the NaN pair is left out) -> sqrt(1 * 2)
    assert m.geometric_mean_ratio(model, ref, series) == pytest.approx(math.sqrt(2))


def test_hist_vol_intervals_cover_near_nominal_on_a_gaussian_random_walk() -> None:
    """A log-price Gaussian random walk is exactly what hist_vol assumes: its 50/80/90 % intervals
    must cover close to nominal and its PIT must be flat."""
    rng = np.random.default_rng(3)
    n, lookback, horizon, sigma = 3000, 60, 5, 0.02
    log_price = np.log(50.0) + np.cumsum(rng.normal(0, sigma, size=(n, lookback + horizon)), axis=1)
    close = np.exp(log_price)
    hist, future = close[:, :lookback], close[:, lookback:]
    paths = hist_vol_paths(hist, horizon, 200, rng)
    assert paths.shape == (n, 200, horizon)
    summary = _score(paths, hist, future)
    for key, level in (("0.5", 0.5), ("0.8", 0.8), ("0.9", 0.9)):
        assert summary["coverage"][key] == pytest.approx(level, abs=0.025), key
    assert max(abs(f - 0.1) for f in summary["pit_histogram"]) < 0.02
    # Its point forecast (median of paths) is the last close up to sampling noise: MASE near naive's.
    naive = _score(naive_paths(hist, horizon, 1, rng), hist, future)
    assert summary["mase"] == pytest.approx(naive["mase"], rel=0.05)
    # A too-narrow forecast is caught: halve the volatility and the 80 % interval covers far less.
    narrow = hist[:, -1, None, None] * np.exp(np.log(paths / hist[:, -1, None, None]) / 2)
    assert _score(narrow, hist, future)["coverage"]["0.8"] < 0.6


def test_direction_hits_excludes_flat_moves() -> None:
    last = np.array([10.0, 10.0])
    point = np.array([[11.0, 10.0], [9.0, 9.0]])
    y = np.array([[12.0, 11.0], [10.0, 8.0]])
    hits = m.direction_hits(point, last, y)
    assert hits[0, 0] == 1.0 and math.isnan(hits[0, 1])   # predicted no change
    assert math.isnan(hits[1, 0]) and hits[1, 1] == 1.0   # realised no change


def test_coverage_of_a_calibrated_forecast_is_nominal_even_with_few_samples() -> None:
    """With 5 sample paths a calibrated forecast must still read 50/80/90 %: empirical sample-quantile
    intervals would read about 34/57/62 % and blame the model for the sample size."""
    rng = np.random.default_rng(4)
    n, s = 20_000, 5
    hist = np.full((n, 3), 100.0) + np.array([0.0, 1.0, 0.0])
    paths = 100.0 + rng.standard_normal((n, s, 1))
    future = 100.0 + rng.standard_normal((n, 1))
    summary = _score(paths, hist, future)
    for key in ("0.5", "0.8", "0.9"):
        assert summary["coverage"][key] == pytest.approx(float(key), abs=0.015), key


def test_direction_t_is_clustered_by_date() -> None:
    # per-date hit rates 1, 0.5, 1 -> mean 0.8333, sd 0.2887 over 3 dates -> t = 0.3333 / (0.2887 / sqrt 3) = 2
    hits = np.array([[1.0], [1.0], [1.0], [0.0], [1.0], [np.nan]])
    dates = np.array([1, 1, 2, 2, 3, 3])
    assert direction_t_by_date(hits, dates) == pytest.approx(2.0)
    assert math.isnan(direction_t_by_date(hits[:2], dates[:2]))     # one date: no test
