"""Synthetic K-line generation (the paper's generation task): generated continuations against real ones.

From each origin a forecaster generates a continuation of G = H rows; the real windows are the realised
continuations of the same origins (those with every row present). Both are described by the same
normalised features per row, relative to the row before (the last lookback row before the first):
``log(open / prev close)``, ``log(high / prev close)``, ``log(low / prev close)``, ``log(close / prev
close)`` and, with volume, ``log((volume + 1) / (lookback mean volume + 1))``, each standardised by the
real windows' mean and standard deviation.

* ``discriminative_score``: a small GRU classifier is trained to tell real from generated windows on 70 %
  of the origins (both windows of an origin on the same side) and tested on the rest; the score is its
  held-out error (0.5: indistinguishable, 0: told apart every time); ``discriminative_accuracy_gap`` is
  ``|accuracy - 0.5|``, the other convention in the literature.
* ``predictive_rank_ic``: a small GRU trained only on generated windows to forecast the last row's close
  return from the rows before it, scored by the Spearman correlation of its forecasts with the realised
  returns over the real windows (train on synthetic, test on real).
* ``stylized_facts``: computed on the close log returns standardised by the origin's lookback volatility,
  pooled over windows: ``return_kurtosis`` (excess), ``return_acf_1``, ``abs_return_acf`` (lags 1..10;
  null from the window length on), ``volume_abs_return_corr``, ``high_low_range`` (quantiles of
  ``log(high / low)`` over the lookback volatility); each real vs generated with a ``distance``
  (absolute difference; mean absolute difference over the lags; Wasserstein-1 between the range samples).

Baselines from the lookback alone: ``bootstrap`` (moving-block bootstrap of the lookback's rows as relative
moves), ``garch_sim`` (GARCH(1,1) with Student-t errors fitted on the lookback's close returns through
``arch``, simulated), ``random_walk`` (Gaussian close returns with the lookback's mean and volatility).
The last two simulate closes only: each row's opening gap, wicks and volume are those of a lookback row
drawn at random (the simulated return runs from the previous close to the close).

Invalid windows: a generated window with a price that is not finite and positive, or a negative volume, is
not a possible candle sequence. Nothing is floored: each such window is counted (``invalid_windows``) and
scored as a failure, a window the classifier tells apart (it is correct on both the real and the generated
window of that origin when the origin is held out); it cannot enter a classifier's training, the
predictive GRU's training or the stylised facts, which are computed on the valid windows (``windows`` and
``invalid_windows`` say how many).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import kurtosis, spearmanr, wasserstein_distance
from torch import nn

from kronos.evaluate.baselines import hist_vol_sigma
from kronos.evaluate.tasks.comparison import per_date
from kronos.stats import moving_block_indices

GEN_BASELINES: tuple[str, ...] = ("bootstrap", "garch_sim", "random_walk")
ACF_LAGS = 10
RANGE_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
MIN_LENGTH = 3  # rows a window needs for the predictive score (2 to see, 1 to forecast)


@dataclass(frozen=True)
class Anchors:
    """What each origin's window is measured against (N origins).

    Attributes:
        close: [N] the last observed close; volume: [N] the lookback's mean volume (NaN without volume);
        sigma: [N] standard deviation of the lookback's close log returns.
    """

    close: np.ndarray
    volume: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_lookback(cls, hist_raw: np.ndarray, features: Sequence[str]) -> "Anchors":
        """From raw lookbacks [N, L, F] whose columns are ``features``."""
        close = hist_raw[..., list(features).index("close")]
        volume = (hist_raw[..., list(features).index("volume")].mean(axis=1) if "volume" in features
                  else np.full(len(hist_raw), np.nan))
        sigma = hist_vol_sigma(close)
        return cls(close[:, -1], volume, np.where(sigma > 0, sigma, np.nan))

    def take(self, rows: np.ndarray) -> "Anchors":
        """The anchors of the origins ``rows`` (indices or a bool mask)."""
        return Anchors(self.close[rows], self.volume[rows], self.sigma[rows])


def invalid_parts(windows: np.ndarray, features: Sequence[str]) -> dict[str, np.ndarray]:
    """Why raw windows [N, G, F] are impossible: ``price`` (a price not finite and positive) and ``volume`` (a volume
    not finite or negative), each bool [N]."""
    w = np.asarray(windows, dtype=np.float64)
    feats = list(features)
    prices = w[..., [feats.index(f) for f in ("open", "high", "low", "close")]]
    with np.errstate(invalid="ignore"):
        out = {"price": ~(np.isfinite(prices) & (prices > 0)).all(axis=(1, 2))}
        if "volume" in feats:
            vol = w[..., feats.index("volume")]
            out["volume"] = ~(np.isfinite(vol) & (vol >= 0)).all(axis=1)
    return out


def valid_windows(windows: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """bool [N]: raw windows [N, G, F] whose prices are finite and positive and whose volume is finite and >= 0."""
    return ~np.logical_or.reduce(list(invalid_parts(windows, features).values()))


def window_features(windows: np.ndarray, anchors: Anchors, features: Sequence[str]) -> np.ndarray:
    """Raw windows [N, G, F] -> per-row relative features [N, G, C] (C = 5 with volume, else 4).

    Nothing is floored: the features of an invalid window (:func:`valid_windows`) are NaN where the logarithm
    does not exist, and the window is scored as a failure by the caller.
    """
    idx = {f: list(features).index(f) for f in features}
    w = np.asarray(windows, dtype=np.float64)
    prices = w[..., [idx["open"], idx["high"], idx["low"], idx["close"]]]
    prev = np.concatenate([anchors.close[:, None], prices[:, :-1, 3]], axis=1)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.log(prices / prev)]
        if "volume" in idx:
            out.append(np.log((w[..., idx["volume"]] + 1.0) / (anchors.volume[:, None] + 1.0))[..., None])
    return np.concatenate(out, axis=-1)


def standardise(real: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array [.., C] by the real windows' per-channel mean and std; non-finite -> 0."""
    flat = real.reshape(-1, real.shape[-1])
    mean, std = np.nanmean(flat, axis=0), np.nanstd(flat, axis=0)
    std = np.where(std > 0, std, 1.0)
    return [np.nan_to_num((a - mean) / std, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            for a in (real, *others)]


class _GRU(nn.Module):
    """A one-layer GRU over [B, G, C] whose last hidden state feeds one linear output: [B]."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return self.head(h[-1]).squeeze(-1)


def _fit(x: np.ndarray, y: np.ndarray, loss_fn: nn.Module, seed: int, epochs: int, hidden: int) -> _GRU:
    """Train a ``_GRU`` on x [B, G, C] -> y [B] with Adam (seeded init and batch order)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _GRU(x.shape[-1], hidden)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    batch = 256
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch):
            sel = order[start:start + batch]
            opt.zero_grad()
            loss_fn(model(xt[sel]), yt[sel]).backward()
            opt.step()
    return model.eval()


def discriminative(real: np.ndarray, generated: np.ndarray, dates: np.ndarray, *, seed: int = 0, epochs: int = 30,
                   hidden: int = 16, test_share: float = 0.3, valid: np.ndarray | None = None) -> dict[str, Any]:
    """Held-out error of a GRU telling real from generated windows of the same origins.

    Args:
        real, generated: standardised features [M, G, C] of M origins (row i of both: the same origin).
        dates: [M] decision dates (the per-date held-out accuracy is the Diebold–Mariano loss).
        valid: bool [M], generated windows that are possible candles (None: all); an invalid one is kept
            out of training and counted as told apart when held out (a failure).

    Returns:
        ``discriminative_score`` (held-out error), ``discriminative_accuracy_gap`` (|accuracy - 0.5|),
        ``windows`` (M), ``invalid_windows``, ``test_windows``, and ``_loss`` {date: |held-out accuracy - 0.5|}.
    """
    m = len(real)
    ok = np.ones(m, bool) if valid is None else np.asarray(valid, dtype=bool)
    if ok.sum() < 10:
        return {"discriminative_score": float("nan"), "discriminative_accuracy_gap": float("nan"), "windows": m,
                "invalid_windows": int((~ok).sum()), "test_windows": 0, "_loss": {}}
    order = np.random.default_rng(seed).permutation(m)
    n_test = max(2, int(round(m * test_share)))
    test, train = order[:n_test], order[n_test:]
    train = train[ok[train]]
    x_train = np.concatenate([real[train], generated[train]])
    y_train = np.concatenate([np.ones(len(train)), np.zeros(len(train))])
    model = _fit(x_train, y_train, nn.BCEWithLogitsLoss(), seed, epochs, hidden)
    with torch.inference_mode():
        p_real = model(torch.from_numpy(real[test])).numpy() > 0
        p_gen = model(torch.from_numpy(generated[test])).numpy() > 0
    failed = ~ok[test]                                       # invalid: told apart, both windows right
    correct = np.concatenate([p_real | failed, ~p_gen | failed]).astype(np.float64)
    accuracy = float(correct.mean())
    days, daily = per_date(correct, np.concatenate([dates[test], dates[test]]))
    daily = np.abs(daily - 0.5)                              # the loss of the headline: distance from a coin flip
    return {"discriminative_score": 1.0 - accuracy, "discriminative_accuracy_gap": abs(accuracy - 0.5),
            "windows": int(m), "invalid_windows": int((~ok).sum()), "test_windows": int(2 * n_test),
            "_loss": {int(d): float(v) for d, v in zip(days, daily)}}


def predictive(real: np.ndarray, generated: np.ndarray, *, seed: int = 0, epochs: int = 30,
               hidden: int = 16) -> float:
    """Spearman correlation on real windows of a GRU trained on generated ones to forecast the last close return.

    Args:
        real, generated: standardised features [M, G, C]; channel 3 is the close return.
    """
    if real.shape[1] < MIN_LENGTH or len(generated) < 10 or len(real) < 3:
        return float("nan")
    model = _fit(generated[:, :-1], generated[:, -1, 3], nn.MSELoss(), seed, epochs, hidden)
    with torch.inference_mode():
        forecast = model(torch.from_numpy(real[:, :-1])).numpy()
    if np.ptp(forecast) == 0:
        return float("nan")
    return float(spearmanr(forecast, real[:, -1, 3]).statistic)


def _pooled_acf(x: np.ndarray, lag: int) -> float:
    """Autocorrelation at ``lag`` of the rows of x [M, G] pooled over rows (pairs within a row)."""
    if lag >= x.shape[1]:
        return float("nan")
    a, b = x[:, :-lag].ravel(), x[:, lag:].ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def stylized_facts(windows: np.ndarray, anchors: Anchors, features: Sequence[str]) -> dict[str, Any]:
    """Stylised facts of valid raw windows [M, G, F] (see the module docstring for each)."""
    feats = window_features(windows, anchors, features)
    r = feats[..., 3] / anchors.sigma[:, None]                                 # standardised close returns
    flat = r[np.isfinite(r)]
    w = np.asarray(windows, dtype=np.float64)
    hi, lo = w[..., list(features).index("high")], w[..., list(features).index("low")]
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = (np.log(hi / lo) / anchors.sigma[:, None]).ravel()
    spread = spread[np.isfinite(spread)]
    volume_corr = float("nan")
    if feats.shape[-1] > 4:
        v, a = feats[..., 4].ravel(), np.abs(r).ravel()
        ok = np.isfinite(v) & np.isfinite(a)
        if ok.sum() >= 3 and v[ok].std() > 0 and a[ok].std() > 0:
            volume_corr = float(np.corrcoef(v[ok], a[ok])[0, 1])
    return {
        "return_kurtosis": float(kurtosis(flat)) if flat.size > 3 else float("nan"),
        "return_acf_1": _pooled_acf(r, 1),
        "abs_return_acf": [_pooled_acf(np.abs(r), k) for k in range(1, ACF_LAGS + 1)],
        "volume_abs_return_corr": volume_corr,
        "high_low_range": spread,
    }


def compare_facts(real: dict[str, Any], generated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{fact: {real, generated, distance}}`` of two ``stylized_facts`` results (see the module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    for fact in ("return_kurtosis", "return_acf_1", "volume_abs_return_corr"):
        a, b = real[fact], generated[fact]
        out[fact] = {"real": a, "generated": b, "distance": abs(a - b)}
    a, b = np.asarray(real["abs_return_acf"]), np.asarray(generated["abs_return_acf"])
    both = np.isfinite(a) & np.isfinite(b)
    out["abs_return_acf"] = {"real": a.tolist(), "generated": b.tolist(), "lags": list(range(1, ACF_LAGS + 1)),
                             "distance": float(np.abs(a - b)[both].mean()) if both.any() else float("nan")}
    ra, rb = real["high_low_range"], generated["high_low_range"]
    quantiles = list(RANGE_QUANTILES)
    out["high_low_range"] = {
        "real": np.quantile(ra, quantiles).tolist() if ra.size else None,
        "generated": np.quantile(rb, quantiles).tolist() if rb.size else None,
        "quantiles": quantiles,
        "distance": float(wasserstein_distance(ra, rb)) if ra.size and rb.size else float("nan"),
    }
    return out


# ----------------------------------------------------------------------------------------------- baselines
def _relative_rows(hist_raw: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """Each lookback row after the first relative to the previous close: [N, L - 1, F] (prices as ratios)."""
    close = hist_raw[..., list(features).index("close")]
    rel = hist_raw[:, 1:].copy()
    for f in ("open", "high", "low", "close"):
        rel[..., list(features).index(f)] = hist_raw[:, 1:, list(features).index(f)] / close[:, :-1]
    return rel


def _rebuild(rel: np.ndarray, last_close: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """Relative rows [N, G, F] (prices over the previous close) -> raw rows, chained from ``last_close``."""
    out = rel.copy()
    ci = list(features).index("close")
    prev = last_close.astype(np.float64)
    for g in range(rel.shape[1]):
        for f in ("open", "high", "low", "close"):
            out[:, g, list(features).index(f)] = rel[:, g, list(features).index(f)] * prev
        prev = out[:, g, ci]
    return out


def bootstrap_windows(hist_raw: np.ndarray, length: int, features: Sequence[str], rng: np.random.Generator,
                      block: int | None = None) -> np.ndarray:
    """``bootstrap``: moving blocks of the lookback's relative rows, chained from the last close: [N, G, F].

    The block length defaults to ``ceil((L - 1) ** (1/3))``, at least 2.
    """
    rel = _relative_rows(hist_raw, features)
    n, m = rel.shape[:2]
    if length > m:
        raise ValueError(f"the bootstrap baseline draws {length} rows from a lookback of {m + 1}: the lookback must be "
                         "longer than the generated window")
    block = min(block or max(2, int(np.ceil(m ** (1 / 3)))), m)
    idx = moving_block_indices(m, block, n, rng)[:, :length]                    # [N, G] lookback rows
    picked = np.take_along_axis(rel, idx[..., None], axis=1)
    return _rebuild(picked, hist_raw[:, -1, list(features).index("close")], features)


def _candles_from_returns(hist_raw: np.ndarray, log_returns: np.ndarray, features: Sequence[str],
                          rng: np.random.Generator) -> np.ndarray:
    """Close log returns [N, G] -> rows [N, G, F]: opening gap, wicks and volume of random lookback rows."""
    rel = _relative_rows(hist_raw, features)
    n, m = rel.shape[:2]
    donor = np.take_along_axis(rel, rng.integers(0, m, size=(n, log_returns.shape[1]))[..., None], axis=1)
    oi, hi, li, ci = (list(features).index(f) for f in ("open", "high", "low", "close"))
    body_top = np.maximum(donor[..., oi], donor[..., ci])
    body_low = np.minimum(donor[..., oi], donor[..., ci])
    upper, lower = donor[..., hi] / body_top, donor[..., li] / body_low          # wick ratios >= 1 / <= 1
    close, gap = np.exp(log_returns), donor[..., oi]
    out = donor.copy()
    out[..., ci] = close
    out[..., hi] = np.maximum(gap, close) * np.maximum(upper, 1.0)
    out[..., li] = np.minimum(gap, close) * np.minimum(lower, 1.0)
    return _rebuild(out, hist_raw[:, -1, ci], features)


def random_walk_windows(hist_raw: np.ndarray, length: int, features: Sequence[str],
                        rng: np.random.Generator) -> np.ndarray:
    """``random_walk``: Gaussian close log returns with the lookback's mean and std: [N, G, F]."""
    close = hist_raw[..., list(features).index("close")]
    r = np.diff(np.log(close), axis=1)
    shocks = rng.standard_normal((len(r), length)) * hist_vol_sigma(close)[:, None] + r.mean(axis=1)[:, None]
    return _candles_from_returns(hist_raw, shocks, features, rng)


def garch_sim_windows(hist_raw: np.ndarray, length: int, features: Sequence[str], rng: np.random.Generator,
                      instruments: np.ndarray, refit_every: int = 10) -> tuple[np.ndarray, dict[str, Any]]:
    """``garch_sim``: GARCH(1,1)-t fitted on each lookback's close returns (``arch``), simulated: [N, G, F].

    Parameters are re-estimated every ``refit_every`` origins of a series (the cost bound of the
    ``garch`` baseline) and simulated from the lookback's last conditional variance.

    Returns:
        (windows, cost {fits, failures, seconds}); a failed fit falls back to ``random_walk`` returns.
    """
    from arch import arch_model

    start = time.perf_counter()
    r = np.diff(np.log(hist_raw[..., list(features).index("close")]), axis=1) * 100.0
    out = np.empty((len(r), length))
    params: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    fits = failures = 0
    for i in range(len(r)):
        name = str(instruments[i])
        count = seen.get(name, 0)
        seen[name] = count + 1
        model = arch_model(r[i], mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
        try:
            if name not in params or count % refit_every == 0:
                fits += 1
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    params[name] = np.asarray(model.fit(disp="off", show_warning=False).params)
            mu, omega, alpha, beta, nu = params[name]
            var = float(model.fix(params[name]).conditional_volatility[-1]) ** 2
            resid = float(r[i, -1] - mu)
            scale = np.sqrt((nu - 2.0) / nu) if nu > 2 else 1.0
            for g in range(length):
                var = omega + alpha * resid ** 2 + beta * var
                resid = np.sqrt(var) * rng.standard_t(nu) * scale
                out[i, g] = mu + resid
            if not np.isfinite(out[i]).all():
                raise ValueError("non-finite simulation")
        except (ValueError, np.linalg.LinAlgError):
            failures += 1
            out[i] = rng.standard_normal(length) * r[i].std(ddof=1) + r[i].mean()
    windows = _candles_from_returns(hist_raw, out / 100.0, features, rng)
    return windows, {"fits": fits, "failures": failures, "seconds": round(time.perf_counter() - start, 3),
                     "refit_every": refit_every}
