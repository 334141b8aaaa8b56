"""``SyntheticSource``: deterministic, market-like OHLCV with a weak planted predictable component.

Each instrument i has daily log-returns

    r[i, t] = beta_i * m[t] + a[i, t] + sigma[i, t] * eps[i, t]

- ``m[t]``: a common market shock (Student-t, GARCH(1,1) volatility), loaded with beta_i ~ U(0.6, 1.4);
- ``sigma[i, t]``: GARCH(1,1) volatility around a per-instrument level of 1-3 %/day
  (volatility clustering); ``eps`` Student-t with 4 degrees of freedom scaled to unit variance
  (fat tails);
- ``a[i, t]``: the planted component, a latent drift following an AR(1) with persistence
  ``signal_persistence`` (0.95: half-life ~2 weeks) and stationary std ``signal_strength`` times
  the instrument's volatility level. It only enters through the closes, so it is visible in past
  candles: trailing mean returns estimate it, and instruments with a higher trailing return keep
  outperforming over the next days (short-term momentum that differs across instruments). The
  lag-1 autocorrelation of daily returns it creates is ~0.02-0.05, as small as in real markets,
  while the cross-sectional RankIC of a trailing 10-day return against the next 10-day return
  is ~0.1 (tested), enough for a small model trained minutes to rank instruments above chance.

Candles: open = previous close times a small gap; high/low extend max/min(open, close) by
half-normal wicks, so high >= max(open, close) and low <= min(open, close); volume is
log-normal, autocorrelated and rises with |return| / sigma; amount = volume * mean(OHLC).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from kronos.data.panel import Panel


def _student_t(rng: np.random.Generator, shape: tuple[int, ...], dof: float = 4.0) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(dof, size=shape) / np.sqrt(dof / (dof - 2.0))


class SyntheticSource:
    """Built-in synthetic market (see module docstring); same seed, same data.

    Args:
        n_instruments: number of series.
        n_steps: rows per series.
        seed: random seed.
        start: first timestamp.
        freq: pandas frequency of the timestamps ("B" = business days).
        signal_strength: std of the planted drift as a fraction of each instrument's volatility.
        signal_persistence: AR(1) coefficient of the planted drift.
    """

    def __init__(
        self,
        n_instruments: int = 24,
        n_steps: int = 700,
        seed: int = 0,
        start: str = "2020-01-01",
        freq: str = "B",
        signal_strength: float = 0.3,
        signal_persistence: float = 0.95,
    ) -> None:
        self.n_instruments = n_instruments
        self.n_steps = n_steps
        self.seed = seed
        self.start = start
        self.freq = freq
        self.signal_strength = signal_strength
        self.signal_persistence = signal_persistence

    def returns(self) -> tuple[np.ndarray, np.ndarray]:
        """Log-returns and the planted drift, each float64 [n_instruments, n_steps]."""
        rng = np.random.default_rng(self.seed)
        n, t_len = self.n_instruments, self.n_steps
        level = rng.uniform(0.01, 0.03, n)  # daily vol level per instrument
        beta = rng.uniform(0.6, 1.4, n)
        eps, eps_m = _student_t(rng, (t_len, n)), _student_t(rng, (t_len,))
        # GARCH(1,1): alpha 0.08, beta 0.90, so the long-run variance is omega / 0.02
        var, var_m = level**2, 0.008**2
        phi = self.signal_persistence
        drift_noise = rng.standard_normal((t_len, n)) * level * self.signal_strength * np.sqrt(1 - phi**2)
        drift = rng.standard_normal(n) * level * self.signal_strength
        r, a = np.empty((t_len, n)), np.empty((t_len, n))
        for t in range(t_len):
            shock, shock_m = np.sqrt(var) * eps[t], np.sqrt(var_m) * eps_m[t]
            a[t] = drift
            r[t] = beta * shock_m + drift + shock
            var = 0.02 * level**2 + 0.08 * shock**2 + 0.90 * var
            var_m = 0.02 * 0.008**2 + 0.08 * shock_m**2 + 0.90 * var_m
            drift = phi * drift + drift_noise[t]
        return r.T, a.T

    def load(self) -> Panel:
        """The synthetic market as a Panel (instruments SYN000, SYN001, ...; all members)."""
        rng = np.random.default_rng([self.seed, 1])
        r, _ = self.returns()
        n, t_len = r.shape
        sigma = r.std(axis=1, keepdims=True)
        close = rng.uniform(10.0, 200.0, (n, 1)) * np.exp(np.cumsum(r, axis=1))
        prev = np.concatenate([close[:, :1] * np.exp(-r[:, :1]), close[:, :-1]], axis=1)
        open_ = prev * np.exp(rng.normal(0.0, 0.2, (n, t_len)) * sigma)
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.5, (n, t_len))) * sigma)
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.5, (n, t_len))) * sigma)
        log_vol = np.zeros((n, t_len))
        noise = rng.normal(0.0, 0.25, (n, t_len))
        for t in range(1, t_len):
            log_vol[:, t] = 0.7 * log_vol[:, t - 1] + noise[:, t]
        volume = rng.uniform(1e5, 1e7, (n, 1)) * np.exp(log_vol + 0.35 * np.abs(r) / sigma)
        amount = volume * (open_ + high + low + close) / 4.0
        stamps = pd.date_range(self.start, periods=t_len, freq=self.freq).as_unit("ns").to_numpy()
        values = np.stack([open_, high, low, close, volume, amount], axis=-1).astype(np.float32)
        names = [f"SYN{i:03d}" for i in range(n)]
        return Panel(names, [stamps.copy() for _ in names], [np.ascontiguousarray(v) for v in values],
                     origin=self.origin)

    @property
    def origin(self) -> str:
        """The name the data is known by in messages and ``training_info.json``."""
        return f"SyntheticSource(seed={self.seed})"

    def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, None]]:
        """(symbol, timestamps [T], values float32 [T, 6], None) per instrument (see ``Panel.iter_series``)."""
        yield from self.load().iter_series()
