"""kronos.stats: every statistic against a hand computation, and the size of the overlap-robust t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from kronos.stats import (
    TStat,
    block_bootstrap_ci,
    daily_ic,
    diebold_mariano,
    hansen_hodrick_t,
    ic_summary,
    mean_t,
    mincer_zarnowitz,
    moving_block_indices,
    newey_west_t,
    nonoverlap_t,
    permutation_pvalue,
)

X = np.array([0.3, -0.1, 0.8, 0.2, 0.5, -0.4, 0.9, 0.1, 0.6, 0.0, 0.7, 0.4])


def _acov(x: np.ndarray, k: int) -> float:
    """By hand: sum_{t=k..n-1} (x_t - m)(x_{t-k} - m) / n, written as an explicit loop."""
    m = sum(x) / len(x)
    return sum((x[t] - m) * (x[t - k] - m) for t in range(k, len(x))) / len(x)


def test_plain_t_is_the_classical_t_test() -> None:
    stat = mean_t(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert stat.t == pytest.approx(3 * np.sqrt(2))  # mean 3, sd sqrt(2.5), n 5
    assert stat.method == "iid" and stat.df == 4
    assert stat.p == pytest.approx(sps.ttest_1samp([1.0, 2, 3, 4, 5], 0.0).pvalue)
    assert np.isnan(mean_t(np.array([1.0, 1.0, 1.0])).t)  # no variance
    assert np.isnan(mean_t(np.array([1.0, 2.0])).t)  # too short
    assert mean_t(np.array([1.0, np.nan, 2.0, 3.0])).n == 3  # NaN dropped


def test_newey_west_by_hand() -> None:
    n, m = len(X), X.mean()
    lrv2 = _acov(X, 0) + 2 * (2 / 3 * _acov(X, 1) + 1 / 3 * _acov(X, 2))
    stat = newey_west_t(X, 2)
    assert stat.t == pytest.approx(m / np.sqrt(lrv2 / n), rel=1e-12)
    assert stat.se == pytest.approx(np.sqrt(lrv2 / n), rel=1e-12)
    assert stat.p == pytest.approx(2 * sps.norm.sf(abs(stat.t)))
    assert stat.method == "newey_west"
    assert newey_west_t(X, 0).t == pytest.approx(mean_t(X).t)  # lag 0: the classical t, as before
    assert mean_t(X, overlap=3, method="newey_west").t == pytest.approx(stat.t)


def test_hansen_hodrick_by_hand() -> None:
    n, m, h = len(X), X.mean(), 3
    lrv = (_acov(X, 0) + 2 * (_acov(X, 1) + _acov(X, 2))) * n / (n - 2 * h + 1)
    stat = hansen_hodrick_t(X, h)
    assert stat.method == "hansen_hodrick"
    assert stat.t == pytest.approx(m / np.sqrt(lrv / n), rel=1e-12)
    assert stat.df == n // h - 1 == 3
    assert stat.p == pytest.approx(2 * sps.t.sf(abs(stat.t), 3))
    assert mean_t(X, overlap=3).t == stat.t  # the default method
    assert hansen_hodrick_t(X, 1).t == pytest.approx(mean_t(X).t)  # H = 1: the classical t


def test_hansen_hodrick_falls_back_to_newey_west_when_its_variance_is_not_positive() -> None:
    # Alternating series: the lag-1 autocovariance is about -g0, so g0 + 2 g1 < 0.
    x = np.array([1.0, -1.0] * 10) + 0.05
    assert _acov(x, 0) + 2 * _acov(x, 1) < 0
    stat = hansen_hodrick_t(x, 2)
    assert stat.method == "newey_west"
    assert stat.t == pytest.approx(newey_west_t(x, 2).t)


def test_nonoverlap_averages_the_phase_t() -> None:
    phases = [X[s::3] for s in range(3)]
    by_hand = [p.mean() / (p.std(ddof=1) / np.sqrt(len(p))) for p in phases]
    stat = nonoverlap_t(X, 3)
    assert stat.t == pytest.approx(np.mean(by_hand))
    assert stat.mean == pytest.approx(X.mean())
    assert stat.df == 3 and stat.method == "nonoverlap"
    assert mean_t(X, 3, method="nonoverlap").t == stat.t


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ValueError, match="method"):
        mean_t(X, 2, method="bartlett")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="overlap"):
        mean_t(X, 0)


def test_tstat_as_dict() -> None:
    d = mean_t(X).as_dict()
    assert set(d) == {"mean", "t", "se", "n", "method", "p", "df"}
    assert isinstance(mean_t(X), TStat)


def _overlapping_sums(reps: int, days: int, h: int, seed: int) -> np.ndarray:
    """[reps, days] H-day sums of iid N(0, 1) noise on consecutive days (true mean 0)."""
    e = np.random.default_rng(seed).standard_normal((reps, days + h - 1))
    c = np.concatenate([np.zeros((reps, 1)), np.cumsum(e, axis=1)], axis=1)
    return c[:, h:] - c[:, :-h]


def _hh_vectorised(x: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The same statistic as hansen_hodrick_t, over the rows of x at once: (t [R], p [R])."""
    n = x.shape[1]
    d = x - x.mean(axis=1, keepdims=True)
    g = [np.einsum("ij,ij->i", d[:, k:], d[:, : n - k]) / n for k in range(h)]
    lrv = (g[0] + 2 * sum(g[1:])) * n / (n - 2 * h + 1)
    t = x.mean(axis=1) / np.sqrt(lrv / n)
    return t, 2 * sps.t.sf(np.abs(t), n // h - 1)


def test_overlap_robust_t_holds_its_size_at_h5_over_140_days() -> None:
    """Issue 18: overlapping 5-day sums over 140 days, nominal 5 % two-sided: at most 7 % rejections."""
    h, days, reps = 5, 140, 20000
    x = _overlapping_sums(reps, days, h, seed=7)
    t, p = _hh_vectorised(x, h)
    for row in (0, 1, 2):  # the vectorised copy is the library's statistic
        stat = mean_t(x[row], overlap=h)
        assert stat.t == pytest.approx(t[row], rel=1e-10) and stat.p == pytest.approx(p[row], rel=1e-8)
    assert np.mean(p < 0.05) <= 0.07  # p-value test: about 5.0 %
    assert np.mean(np.abs(t) > 1.96) <= 0.07  # even read against the normal 1.96: about 6.2 %
    assert np.mean(p < 0.05) >= 0.03  # not bought with a test that never rejects
    # Newey-West with lag H - 1 (the old rule) over-rejects on the same draws.
    d = x - x.mean(axis=1, keepdims=True)
    g = [np.einsum("ij,ij->i", d[:, k:], d[:, : days - k]) / days for k in range(h)]
    nw = g[0] + 2 * sum((1 - k / h) * g[k] for k in range(1, h))
    assert np.mean(np.abs(x.mean(axis=1) / np.sqrt(nw / days)) > 1.96) > 0.10


def _panel(seed: int = 0, days: int = 30, names: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product([pd.bdate_range("2024-01-01", periods=days), [f"S{i}" for i in range(names)]],
                                       names=["datetime", "instrument"])
    signal = rng.normal(size=len(index))
    label = np.round(0.3 * signal + rng.normal(size=len(index)), 1)  # rounded: ties
    return pd.DataFrame({"signal": signal, "label": label}, index=index)


def test_daily_ic_matches_scipy_per_date() -> None:
    frame = _panel()
    frame.iloc[3, 0] = np.nan  # a missing signal is left out of its date
    rank = daily_ic(frame, "signal", "label")
    pear = daily_ic(frame, "signal", "label", method="pearson")
    for date, day in frame.groupby(level="datetime"):
        day = day.dropna()
        assert rank.loc[date] == pytest.approx(sps.spearmanr(day["signal"], day["label"]).statistic, rel=1e-10)
        assert pear.loc[date] == pytest.approx(sps.pearsonr(day["signal"], day["label"]).statistic, rel=1e-10)
    # ``by`` as a column gives the same series
    flat = daily_ic(frame.reset_index(), "signal", "label")
    np.testing.assert_allclose(flat.to_numpy(), rank.to_numpy())


def test_daily_ic_drops_undefined_dates() -> None:
    frame = _panel(days=3)
    first = frame.index.get_level_values("datetime") == frame.index.get_level_values("datetime")[0]
    frame.loc[first, "signal"] = 1.0  # constant cross-section on the first date
    assert len(daily_ic(frame, "signal", "label")) == 2
    with pytest.raises(KeyError, match="date"):
        daily_ic(frame, "signal", "label", by="date")


def test_ic_summary() -> None:
    daily = daily_ic(_panel(seed=1), "signal", "label")
    out = ic_summary(daily, overlap=2)
    assert out["ic"] == pytest.approx(daily.mean())
    assert out["icir"] == pytest.approx(daily.mean() / daily.std())
    assert out["t"] == pytest.approx(mean_t(daily, overlap=2).t)
    assert out["days"] == 30


def test_diebold_mariano_by_hand() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 40) ** 2, rng.normal(1.2, 1.0, 40) ** 2
    d = a - b
    n = 40
    for h in (1, 3):
        lrv = _acov(d, 0) + 2 * sum((1 - k / h) * _acov(d, k) for k in range(1, h))
        t = d.mean() / np.sqrt(lrv / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
        res = diebold_mariano(a, b, horizon=h)
        assert res.t == pytest.approx(t, rel=1e-12)
        assert res.p == pytest.approx(2 * sps.t.sf(abs(t), n - 1))
        assert res.mean_diff == pytest.approx(d.mean()) and res.n == n
    assert diebold_mariano(b, a).t == pytest.approx(-diebold_mariano(a, b).t)  # antisymmetric
    # a clearly smaller loss: negative and significant
    res = diebold_mariano(np.full(50, 0.5) + rng.normal(0, 0.1, 50), np.ones(50))
    assert res.t < -5 and res.p < 1e-6


def test_mincer_zarnowitz_recovers_alpha_and_beta() -> None:
    rng = np.random.default_rng(4)
    pred = rng.normal(size=500)
    realised = 0.3 + 0.6 * pred + rng.normal(scale=0.2, size=500)
    out = mincer_zarnowitz(pred, realised)
    assert out["alpha"] == pytest.approx(0.3, abs=0.03) and out["beta"] == pytest.approx(0.6, abs=0.03)
    assert out["p"] < 1e-6  # far from (0, 1)
    unbiased = mincer_zarnowitz(pred, pred + rng.normal(scale=0.2, size=500))
    assert unbiased["p"] > 0.01
    exact = mincer_zarnowitz(pred, 0.3 + 0.6 * pred)
    assert exact["alpha"] == pytest.approx(0.3) and exact["beta"] == pytest.approx(0.6) and exact["r2"] == pytest.approx(1.0)


def test_mincer_zarnowitz_hac_wald_matches_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(5)
    pred = rng.normal(size=120)
    realised = 0.1 + 0.9 * pred + np.convolve(rng.normal(size=124), np.ones(5), "valid") * 0.1
    for lags in (0, 4):
        ours = mincer_zarnowitz(pred, realised, lags=lags)
        fit = sm.OLS(realised, sm.add_constant(pred)).fit(
            cov_type="HAC" if lags else "HC0", cov_kwds={"maxlags": lags, "use_correction": False} if lags else {})
        test = fit.wald_test((np.eye(2), np.array([0.0, 1.0])), use_f=False, scalar=True)
        assert ours["alpha"] == pytest.approx(fit.params[0]) and ours["beta"] == pytest.approx(fit.params[1])
        assert ours["r2"] == pytest.approx(fit.rsquared)
        assert ours["wald"] == pytest.approx(float(test.statistic), rel=1e-8)
        assert ours["p"] == pytest.approx(float(test.pvalue), rel=1e-8)


def test_moving_block_indices_are_consecutive_blocks() -> None:
    idx = moving_block_indices(10, 3, 50, np.random.default_rng(0))
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    blocks = idx[:, :9].reshape(50, 3, 3)
    assert np.all(np.diff(blocks, axis=2) == 1)


def test_block_bootstrap_ci() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0.5, 1.0, 400)
    lo, hi = block_bootstrap_ci(x, block=1, n_boot=4000)
    half = 1.96 * x.std() / np.sqrt(400)  # block 1 = the iid bootstrap: about the normal interval
    assert lo == pytest.approx(x.mean() - half, abs=0.02) and hi == pytest.approx(x.mean() + half, abs=0.02)
    assert block_bootstrap_ci(x) == block_bootstrap_ci(x)  # seeded
    # overlapping sums: blocks widen the interval over the iid bootstrap
    y = _overlapping_sums(1, 400, 5, seed=1)[0]
    lo_b, hi_b = block_bootstrap_ci(y, block=10)
    lo_1, hi_1 = block_bootstrap_ci(y, block=1)
    assert hi_b - lo_b > 1.5 * (hi_1 - lo_1)
    assert np.isnan(block_bootstrap_ci(np.array([1.0]))[0])


def test_permutation_pvalue() -> None:
    frame = _panel(seed=2)
    p_signal = permutation_pvalue(frame, "signal", "label", n_perm=99)
    assert p_signal == pytest.approx(1 / 100)  # RankIC ~0.3 on 30 days: no shuffle reaches it
    noise = frame.assign(signal=np.random.default_rng(9).normal(size=len(frame)))
    p_noise = permutation_pvalue(noise, "signal", "label", n_perm=99)
    assert 0.05 < p_noise <= 1.0
    assert permutation_pvalue(noise, "signal", "label", n_perm=99) == p_noise  # seeded
