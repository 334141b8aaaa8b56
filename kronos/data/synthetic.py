"""``SyntheticSource``: deterministic, market-like OHLCV with a planted, volume-borne predictable component.

Each instrument i has daily log-returns

    r[i, t] = beta_i * m[t] + a[i, t] + sigma[i, t] * eps[i, t]

- ``m[t]``: a common market shock (Student-t, GARCH(1,1) volatility), loaded with beta_i ~ U(0.6, 1.4);
- ``sigma[i, t]``: GARCH(1,1) volatility (alpha 0.08, beta 0.90) around a per-instrument level of
  1-3 %/day (volatility clustering), capped at ``VOL_CAP`` times that level; ``eps`` Student-t with 6
  degrees of freedom scaled to unit variance (fat tails with a finite fourth moment: with t(4) shocks the
  GARCH has none, and single instruments drifted to 10x their design volatility);
- ``a[i, t]``: the planted component, a drift announced by *abnormal volume* (in the spirit of the
  "high-volume return premium" documented for equities: names with unusually high trading volume
  outperform over the following days). Each day every instrument draws a volume shock
  ``v[i, t] ~ N(0, 1)``, independent of every return shock. It raises that day's log-volume by
  ``volume_loading * v`` and, ``signal_lag`` days later, the expected log-return by

      a[i, t + signal_lag] = signal_strength * level_i * v[i, t]

  (``level_i``: the instrument's volatility level). Each shock moves a single day's return and
  nothing before it, so no two returns share a planted shock: returns stay serially uncorrelated
  at every lag, and a trailing-return baseline (momentum or reversal) has no information at
  all, while at any decision date the volume of the last ``signal_lag`` days predicts the next
  ``signal_lag`` returns. With the defaults (0.6, lag 2) the oracle (the drift itself) ranks both
  the next-day return close(t) -> close(t+1) and the one after, close(t+1) -> close(t+2) (what a
  portfolio trading at the next close earns), at RankIC 0.53-0.55; today's log-volume against its
  trailing 20-day mean alone ranks close(t+1) -> close(t+2) at 0.45-0.47 (yesterday's ranks
  close(t) -> close(t+1) the same); trailing 5-day returns rank both at 0 +- 0.02 (tested in
  tests/data/test_synthetic.py). That is far stronger than anything in a
  real market, on purpose: the main job's tiny model, trained a few CPU minutes, must learn it
  from sampled token paths and show a significant RankIC measured from the observed last close.
  Fat tails, volatility clustering and serially uncorrelated returns are unaffected.

Measured (``python scripts/synthetic_figures.py``: the main job's market, 24 instruments x 700 days,
seeds 0-4 and 42): each instrument's realised idiosyncratic volatility is 0.68-1.72x its design level
(median 0.89-0.99x; GARCH persistence 0.98 makes 700-day estimates noisy), total daily volatility
1.2-4.5 %; the largest 20-day volatility of any instrument is 8-12 %/day (3.7-4.3x its level); the
excess kurtosis of standardised returns is 1.3-2.3 on average over instruments (at most 11).

Candles: open = previous close times a small gap; high/low extend max/min(open, close) by
half-normal wicks, so high >= max(open, close) and low <= min(open, close); log-volume is an AR(1)
(persistence 0.7) plus ``0.35 * |r| / sigma`` (busy days are volatile days) plus the planted
``volume_loading * v``; amount = volume * mean(OHLC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError
from kronos.data.panel import Panel
from kronos.data.source import SourceBase


@dataclass
class SyntheticPaths:
    """The latent paths behind a synthetic panel: float64 [n_instruments, n_steps] unless noted."""

    returns: np.ndarray  # daily close-to-close log-returns r[i, t]
    drift: np.ndarray  # planted expected return a[i, t] (known at the close of t - signal_lag)
    volume_shock: np.ndarray  # planted abnormal-volume shock v[i, t] (N(0, 1), visible at t)
    vol_level: np.ndarray  # [n_instruments] daily volatility level the drift is scaled by
    beta: np.ndarray  # [n_instruments] loading on the market shock
    market: np.ndarray  # [n_steps] the common market shock m[t] (returns = beta * m + drift + idiosyncratic)


SHOCK_DOF = 6.0  # Student-t degrees of freedom of every return shock (kurtosis 6: GARCH(0.08, 0.90) keeps a 4th moment)
VOL_CAP = 3.0  # GARCH volatility never exceeds this multiple of the instrument's (or the market's) design level


def _student_t(rng: np.random.Generator, shape: tuple[int, ...], dof: float = SHOCK_DOF) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(dof, size=shape) / np.sqrt(dof / (dof - 2.0))


def _check_settings(**settings: Any) -> None:
    """One message naming ``data.source.<key>`` for a setting no synthetic market can be built with."""
    def bad(key: str, what: str) -> DataValidationError:
        return DataValidationError(f"data.source.{key}={settings[key]!r} {what}")

    for key, low in (("n_instruments", 1), ("n_steps", 2), ("seed", 0), ("signal_lag", 1)):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            why = " (a shock cannot move its own day's return)" if key == "signal_lag" else ""
            raise bad(key, f"must be a whole number >= {low}{why}")
    for key in ("signal_strength", "volume_loading"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise bad(key, "must be a finite number")
    try:
        pd.date_range(pd.Timestamp(str(settings["start"])), periods=int(settings["n_steps"]), freq=str(settings["freq"]))
    except (ValueError, TypeError, OverflowError) as err:
        raise DataValidationError(f"data.source.start={settings['start']!r} / data.source.freq={settings['freq']!r}: "
                                  f"no calendar of {settings['n_steps']} steps ({' '.join(str(err).split())[:120]}); "
                                  f"pass e.g. start=2020-01-01 freq=B") from None


class SyntheticSource(SourceBase):
    """Built-in synthetic market (see module docstring); same seed, same data.

    Defaults equal conf/data/synthetic.yaml's (the main job's market).

    Args:
        n_instruments: number of series.
        n_steps: rows per series.
        seed: random seed.
        start: first timestamp.
        freq: pandas frequency of the timestamps ("B" = business days).
        signal_strength: expected log-return that a one-std volume shock announces, as a fraction
            of the instrument's volatility level (0 turns the planted component off).
        signal_lag: days from the volume shock to the return it moves (>= 1).
        volume_loading: log-volume added per unit of the planted volume shock.
    """

    def __init__(
        self,
        n_instruments: int = 24,
        n_steps: int = 700,
        seed: int = 42,
        start: str = "2020-01-01",
        freq: str = "B",
        signal_strength: float = 0.6,
        signal_lag: int = 2,
        volume_loading: float = 0.8,
    ) -> None:
        _check_settings(n_instruments=n_instruments, n_steps=n_steps, seed=seed, start=start, freq=freq,
                        signal_strength=signal_strength, signal_lag=signal_lag, volume_loading=volume_loading)
        self.n_instruments = n_instruments
        self.n_steps = n_steps
        self.seed = seed
        self.start = start
        self.freq = freq
        self.signal_strength = signal_strength
        self.signal_lag = signal_lag
        self.volume_loading = volume_loading

    def paths(self) -> SyntheticPaths:
        """Returns, planted drift and volume shocks (see :class:`SyntheticPaths`)."""
        rng = np.random.default_rng(self.seed)
        n, t_len = self.n_instruments, self.n_steps
        level = rng.uniform(0.01, 0.03, n)  # daily vol level per instrument
        beta = rng.uniform(0.6, 1.4, n)
        eps, eps_m = _student_t(rng, (t_len, n)), _student_t(rng, (t_len,))
        shock_v = rng.standard_normal((t_len, n))
        drift = np.zeros((t_len, n))
        lag = self.signal_lag
        if lag < t_len:
            drift[lag:] = self.signal_strength * level * shock_v[:-lag]
        # GARCH(1,1): alpha 0.08, beta 0.90, so the long-run variance is omega / 0.02
        var, var_m = level**2, 0.008**2
        r, m = np.empty((t_len, n)), np.empty(t_len)
        for t in range(t_len):
            shock, shock_m = np.sqrt(var) * eps[t], np.sqrt(var_m) * eps_m[t]
            r[t] = beta * shock_m + drift[t] + shock
            m[t] = shock_m
            var = np.minimum(0.02 * level**2 + 0.08 * shock**2 + 0.90 * var, (VOL_CAP * level) ** 2)
            var_m = min(0.02 * 0.008**2 + 0.08 * shock_m**2 + 0.90 * var_m, (VOL_CAP * 0.008) ** 2)
        return SyntheticPaths(r.T, drift.T, shock_v.T, level, beta, m)

    def load(self) -> Panel:
        """The synthetic market as a Panel (instruments SYN000, SYN001, ...; all members)."""
        rng = np.random.default_rng([self.seed, 1])
        latent = self.paths()
        r = latent.returns
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
        log_vol += 0.35 * np.abs(r) / sigma + self.volume_loading * latent.volume_shock
        volume = rng.uniform(1e5, 1e7, (n, 1)) * np.exp(log_vol)
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
