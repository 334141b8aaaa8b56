"""SyntheticSource: deterministic, market-like candles, and a planted signal a model can learn."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos.data.synthetic import SyntheticSource


def test_deterministic_by_seed() -> None:
    a, b, c = (SyntheticSource(n_instruments=4, n_steps=100, seed=s).load() for s in (7, 7, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a.values, b.values))
    assert not np.array_equal(a.values[0], c.values[0])
    assert a.instruments == ["SYN000", "SYN001", "SYN002", "SYN003"]


def test_candles_are_consistent_and_market_like() -> None:
    p = SyntheticSource(n_instruments=32, n_steps=800, seed=0).load()
    v = np.stack(p.values)  # [I, T, 6]
    assert (v[..., 1] >= v[..., [0, 3]].max(-1)).all() and (v[..., 2] <= v[..., [0, 3]].min(-1)).all()
    assert (v[..., 4] > 0).all()
    np.testing.assert_allclose(v[..., 5], v[..., 4] * v[..., :4].mean(-1), rtol=1e-5)
    r = np.diff(np.log(v[..., 3].astype(np.float64)), axis=1)
    z = (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True)
    assert (z**4).mean() > 4.0  # fat tails (a normal has kurtosis 3)
    sq = z**2 - 1
    assert np.mean(np.sum(sq[:, 1:] * sq[:, :-1], 1) / np.sum(sq * sq, 1)) > 0.05  # volatility clustering
    lag1 = np.mean(np.sum(z[:, 1:] * z[:, :-1], 1) / np.sum(z * z, 1))
    assert abs(lag1) < 0.1  # no blatant daily autocorrelation
    assert np.mean([np.corrcoef(np.abs(r[i]), np.log(v[i, 1:, 4]))[0, 1] for i in range(32)]) > 0.2


def test_planted_signal_is_visible_in_past_candles() -> None:
    p = SyntheticSource(n_instruments=32, n_steps=800, seed=0).load()
    r = np.diff(np.log(np.stack([v[:, 3] for v in p.values]).astype(np.float64)), axis=1)
    ics = [pd.Series(r[:, t - 10 : t].sum(1)).corr(pd.Series(r[:, t : t + 10].sum(1)), method="spearman")
           for t in range(20, r.shape[1] - 10, 10)]
    assert np.mean(ics) > 0.05
    weak = SyntheticSource(n_instruments=32, n_steps=800, seed=0, signal_strength=0.0).load()
    rw = np.diff(np.log(np.stack([v[:, 3] for v in weak.values]).astype(np.float64)), axis=1)
    ics_w = [pd.Series(rw[:, t - 10 : t].sum(1)).corr(pd.Series(rw[:, t : t + 10].sum(1)), method="spearman")
             for t in range(20, rw.shape[1] - 10, 10)]
    assert np.mean(ics) > np.mean(ics_w) + 0.05
