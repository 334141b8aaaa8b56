"""Statistics of forecasts and signals, defined once: t-statistics of a mean with overlap handling,
information coefficients, Diebold–Mariano, Mincer–Zarnowitz, block bootstrap and permutation tests.

Pure numpy / scipy / pandas; used by the backtest, the evaluate stage and the paper's task suite.

**Overlapping labels.** An H-step label of consecutive decision dates shares H - 1 single-step returns,
so a daily series built from it (a daily IC, a daily loss difference) is MA(H - 1)-autocorrelated and
the plain t overstates its significance. :func:`mean_t` is the one entry point:

* ``method="hansen_hodrick"`` (default): the long-run variance is the sum of the sample
  autocovariances up to lag H - 1 with **uniform** weights (Hansen & Hodrick 1980: exactly the lags an
  MA(H - 1) has), times the small-sample factor ``n / (n - 2H + 1)``; the p-value comes from Student's t
  with ``floor(n / H) - 1`` degrees of freedom (the number of non-overlapping H-blocks less one).
  Why the factor: each of the ``2H - 1`` autocovariances in the sum loses about ``Var(mean)`` to the
  demeaning, so ``E[lrv_hat] ~ lrv (1 - (2H - 1) / n)``; at H = 1 the factor is ``n / (n - 1)``, the
  ordinary ``ddof=1``, and the whole test is exactly the classical one-sample t-test with n - 1 dof.
  Why the dof: the variance estimate has about as much information as ``n / H`` independent blocks.
  Size by simulation (overlapping 5-day sums of iid normal noise, 140 days, 20 000 draws; see
  ``tests/test_stats.py``): ``p < 0.05`` rejects 5.0 % (5.1 % in the test's draws), ``|t| > 1.96`` rejects 6.0-6.2 %; without the factor
  and dof the HH t rejects 7.2 % at 1.96, and Newey–West with lag H - 1 (Bartlett weights, which
  shrink exactly the lags that matter) rejects 12.6 %. When the uniform-weight variance is not positive
  (possible: uniform weights do not guarantee it), Newey–West with lag ``2 (H - 1)`` is used instead
  and ``TStat.method`` says ``"newey_west"``.
* ``method="newey_west"``: Bartlett weights with lag H - 1 (the backtest's rule before this module;
  kept for comparison), normal p-value.
* ``method="nonoverlap"``: see :func:`nonoverlap_t` (the mean of the H phase-shifted subsample t's).

Every t-test returns a :class:`TStat`; ``p`` is two-sided.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

TMethod = Literal["hansen_hodrick", "newey_west", "nonoverlap"]
T_METHODS: tuple[str, ...] = ("hansen_hodrick", "newey_west", "nonoverlap")


@dataclass(frozen=True)
class TStat:
    """A t-statistic of the mean of a series.

    Attributes:
        mean: the sample mean of the finite values.
        t: mean / se.
        se: the standard error of the mean the method estimates.
        n: how many finite values entered.
        method: the variance estimator actually used (``iid``, ``hansen_hodrick``, ``newey_west``,
            ``nonoverlap``).
        p: two-sided p-value (Student t with ``df`` degrees of freedom; normal when ``df`` is None).
        df: degrees of freedom of the reference t distribution (None: normal).
    """

    mean: float
    t: float
    se: float
    n: int
    method: str
    p: float = float("nan")
    df: float | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain-JSON form: ``{mean, t, se, n, method, p, df}``."""
        return asdict(self)


@dataclass(frozen=True)
class DMResult:
    """Diebold–Mariano test of equal predictive accuracy.

    Attributes:
        mean_diff: mean of ``loss_a - loss_b`` (negative: ``a`` has the smaller loss).
        t: the Harvey–Leybourne–Newbold corrected statistic (negative: ``a`` better).
        p: two-sided p-value from Student's t with n - 1 degrees of freedom.
        n: number of paired finite losses.
    """

    mean_diff: float
    t: float
    p: float
    n: int

    def as_dict(self) -> dict[str, object]:
        """Plain-JSON form: ``{mean_diff, t, p, n}``."""
        return asdict(self)


def _finite(x: np.ndarray | pd.Series | list[float]) -> np.ndarray:
    """The finite values of ``x`` as a 1-D float64 array: [n_all] -> [n]."""
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _mean(a: np.ndarray) -> float:
    """Mean of a finite 1-D array (NaN when empty)."""
    return float(a.mean()) if len(a) else float("nan")


def _window_and_values(x: np.ndarray | pd.Series | list[float], k: int, name: str) -> tuple[int, np.ndarray]:
    """(k as an int >= 1, the finite values of x); a ValueError naming ``name`` when k < 1."""
    h = int(k)
    if h < 1:
        raise ValueError(f"{name} must be >= 1, got {k}")
    return h, _finite(x)


def _autocovariances(d: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocovariances ``g_k = sum_t d_t d_{t-k} / n`` of a demeaned series, k = 0..max_lag."""
    n = len(d)
    return np.array([d[k:] @ d[: n - k] / n for k in range(min(max_lag, n - 1) + 1)])


def _nan_stat(n: int, method: str, mean: float = float("nan")) -> TStat:
    return TStat(mean=mean, t=float("nan"), se=float("nan"), n=n, method=method)


def _two_sided_p(t: float, df: float | None) -> float:
    if not np.isfinite(t):
        return float("nan")
    return float(2.0 * (sps.norm.sf(abs(t)) if df is None else sps.t.sf(abs(t), df)))


def _iid_t(x: np.ndarray) -> TStat:
    """The classical one-sample t-test of mean 0: ``mean / (std(ddof=1) / sqrt(n))``, t(n - 1)."""
    n, mean = len(x), _mean(x)
    if n < 3:
        return _nan_stat(n, "iid", mean)
    sd = x.std(ddof=1)
    if not sd > 0:
        return _nan_stat(n, "iid", mean)
    se = float(sd / np.sqrt(n))
    t = mean / se
    return TStat(mean=mean, t=t, se=se, n=n, method="iid", p=_two_sided_p(t, n - 1), df=float(n - 1))


def newey_west_t(x: np.ndarray | pd.Series, lags: int) -> TStat:
    """Newey–West t of the mean (Bartlett weights), normal p-value.

    ``lrv = g_0 + 2 sum_{k=1..lags} (1 - k / (lags + 1)) g_k`` with ``g_k = sum_t (x_t - m)(x_{t-k} - m) / n``;
    ``se = sqrt(lrv / n)``. ``lags == 0`` is the classical t (``std(ddof=1)``, t(n - 1)), as the backtest
    always computed it. NaN t with fewer than 3 finite values or no variance. x: [n] (NaN dropped).
    """
    a = _finite(x)
    if lags <= 0:
        return _iid_t(a)
    n, mean = len(a), _mean(a)
    if n < 3:
        return _nan_stat(n, "newey_west", mean)
    g = _autocovariances(a - mean, int(lags))
    k = np.arange(1, len(g))
    lrv = g[0] + 2.0 * np.sum((1.0 - k / (lags + 1.0)) * g[1:])
    if not lrv > 0:
        return _nan_stat(n, "newey_west", mean)
    se = float(np.sqrt(lrv / n))
    t = mean / se
    return TStat(mean=mean, t=t, se=se, n=n, method="newey_west", p=_two_sided_p(t, None))


def hansen_hodrick_t(x: np.ndarray | pd.Series, overlap: int) -> TStat:
    """Hansen–Hodrick t of the mean of a series of ``overlap``-step overlapping labels (see module doc).

    ``lrv = n / (n - 2H + 1) * (g_0 + 2 sum_{k=1..H-1} g_k)``, ``se = sqrt(lrv / n)``, p from
    t(``floor(n / H) - 1``). Non-positive ``lrv``: Newey–West with lag ``2 (H - 1)`` (``method`` says so).
    ``overlap == 1``: the classical t. x: [n] (NaN dropped).
    """
    h, a = _window_and_values(x, overlap, "overlap")
    if h == 1:
        return _iid_t(a)
    n, mean = len(a), _mean(a)
    df = n // h - 1
    if n < 3 or n - 2 * h + 1 <= 0 or df < 1:
        return _nan_stat(n, "hansen_hodrick", mean)
    g = _autocovariances(a - mean, h - 1)
    lrv = (g[0] + 2.0 * g[1:].sum()) * n / (n - 2 * h + 1)
    if not lrv > 0:
        return newey_west_t(a, 2 * (h - 1))
    se = float(np.sqrt(lrv / n))
    t = mean / se
    return TStat(mean=mean, t=t, se=se, n=n, method="hansen_hodrick", p=_two_sided_p(t, df), df=float(df))


def nonoverlap_t(x: np.ndarray | pd.Series, step: int) -> TStat:
    """t of the mean from non-overlapping subsamples: every ``step``-th value, all ``step`` phases.

    Each phase ``s`` (values ``x[s::step]``, s = 0..step-1) is a series without overlap; its classical
    t is computed and the **average of the ``step`` t's** is reported (one phase alone would throw away
    data and depend on where the sample starts). ``se`` is the average of the phases' standard errors,
    ``mean`` the mean of all values; p from t(``floor(n / step) - 1``), which is conservative for the
    averaged t (the phases are correlated, so the average varies less than one phase's t).
    x: [n] in time order (NaN are dropped before subsampling).
    """
    h, a = _window_and_values(x, step, "step")
    if h == 1:
        return _iid_t(a)
    n, mean = len(a), _mean(a)
    phases = [_iid_t(a[s::h]) for s in range(h)]
    ts = np.array([p.t for p in phases])
    if not np.all(np.isfinite(ts)):
        return _nan_stat(n, "nonoverlap", mean)
    t = float(ts.mean())
    df = n // h - 1
    return TStat(mean=mean, t=t, se=float(np.mean([p.se for p in phases])), n=n, method="nonoverlap",
                 p=_two_sided_p(t, df), df=float(df))


def mean_t(x: np.ndarray | pd.Series, overlap: int = 1, method: TMethod = "hansen_hodrick") -> TStat:
    """t of the mean of a daily series whose values overlap by ``overlap`` steps (1 = no overlap).

    The one entry point for every t in reports; see the module docstring for the methods and their size.
    ``overlap == 1`` gives the classical t whatever the method.
    """
    if method not in T_METHODS:
        raise ValueError(f"method must be one of {T_METHODS}, got {method!r}")
    h = _window_and_values([], overlap, "overlap")[0]
    if method == "hansen_hodrick":
        return hansen_hodrick_t(x, h)
    if method == "newey_west":
        return newey_west_t(x, h - 1)
    return nonoverlap_t(x, h)


# ----------------------------------------------------------------------------------------------------
# Information coefficients


def _dates(frame: pd.DataFrame, by: str) -> pd.Series:
    """The date of every row: the ``by`` column or index level (a clear error when neither exists)."""
    if by in frame.columns:
        return frame[by]
    if by in (frame.index.names or []):
        return pd.Series(frame.index.get_level_values(by), index=frame.index)
    raise KeyError(f"no column or index level {by!r} to group by (columns: {list(frame.columns)})")


def _rank_ready(frame: pd.DataFrame, signal_col: str, label_col: str, by: str,
                method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-date centred values of signal and label (ranks for Spearman), with group codes.

    Returns (dates [G] unique, codes [N] in 0..G-1, centred signal [N], centred label [N]) over the rows
    where both are finite.
    """
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    data = pd.DataFrame({"d": _dates(frame, by).to_numpy(),
                         "s": pd.to_numeric(frame[signal_col], errors="coerce").to_numpy(dtype=np.float64),
                         "l": pd.to_numeric(frame[label_col], errors="coerce").to_numpy(dtype=np.float64)})
    data = data[np.isfinite(data["s"]) & np.isfinite(data["l"])]
    grouped = data.groupby("d", sort=True)
    if method == "spearman":  # Spearman = Pearson of within-date average ranks
        values = grouped[["s", "l"]].rank()
    else:
        values = data[["s", "l"]]
    centred = values - values.groupby(data["d"]).transform("mean")
    codes, uniques = pd.factorize(data["d"], sort=True)
    return np.asarray(uniques), codes, centred["s"].to_numpy(), centred["l"].to_numpy()


def daily_ic(frame: pd.DataFrame, signal_col: str, label_col: str, by: str = "datetime",
             method: Literal["spearman", "pearson"] = "spearman") -> pd.Series:
    """Per date, the cross-sectional correlation of ``signal_col`` with ``label_col``.

    Args:
        frame: one row per (date, instrument); ``by`` is a column or an index level.
        method: ``spearman`` (RankIC: Pearson of within-date average ranks) or ``pearson`` (IC).

    Returns:
        Series indexed by date (named ``by``), one value per date; dates with fewer than two rows where
        both are finite, or a constant cross-section, are left out (their correlation is undefined).
    """
    dates, codes, s, l = _rank_ready(frame, signal_col, label_col, by, method)
    g = len(dates)
    num = np.bincount(codes, weights=s * l, minlength=g)
    den = np.sqrt(np.bincount(codes, weights=s * s, minlength=g) * np.bincount(codes, weights=l * l, minlength=g))
    with np.errstate(divide="ignore", invalid="ignore"):
        ic = num / den
    ok = np.isfinite(ic) & (den > 0)
    name = "rank_ic" if method == "spearman" else "ic"
    return pd.Series(ic[ok], index=pd.Index(dates[ok], name=by), name=name)


def ic_summary(daily: pd.Series, overlap: int = 1, method: TMethod = "hansen_hodrick") -> dict[str, float]:
    """Summary of a daily IC series: ``{ic, icir, t, p, days}``.

    ``ic`` the mean, ``icir`` mean / std (ddof=1, not annualised), ``t`` and ``p`` from
    :func:`mean_t` with the labels' ``overlap``, ``days`` the number of finite days.
    """
    x = _finite(daily)
    days = len(x)
    sd = x.std(ddof=1) if days > 1 else float("nan")
    stat = mean_t(x, overlap, method)
    return {"ic": float(x.mean()) if days else float("nan"),
            "icir": float(x.mean() / sd) if days > 1 and sd > 0 else float("nan"),
            "t": stat.t, "p": stat.p, "days": int(days)}


# ----------------------------------------------------------------------------------------------------
# Forecast comparison


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> DMResult:
    """Diebold–Mariano test that two forecasts have equal expected loss.

    ``d_t = loss_a - loss_b`` over the pairs where both are finite, in time order. The variance of its
    mean is the Newey–West long-run variance (Bartlett weights, lag ``horizon - 1``; always positive,
    where DM's original uniform weights need not be) over n; the statistic is then scaled by the
    Harvey–Leybourne–Newbold (1997) small-sample factor ``sqrt((n + 1 - 2h + h (h - 1) / n) / n)`` and
    referred to Student's t with n - 1 degrees of freedom. Negative t: ``a`` has the smaller loss.

    Args:
        loss_a, loss_b: [n] per-period losses of the two forecasts on the same periods.
        horizon: forecast horizon h (h-step forecast errors are MA(h - 1)).
    """
    a = np.asarray(loss_a, dtype=np.float64).ravel()
    b = np.asarray(loss_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"loss_a and loss_b need the same length, got {a.shape} and {b.shape}")
    h = int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    d = a - b
    d = d[np.isfinite(d)]
    n, mean = len(d), _mean(d)
    if n < 3:
        return DMResult(mean, float("nan"), float("nan"), n)
    dev = d - mean
    g = _autocovariances(dev, h - 1)
    k = np.arange(1, len(g))
    lrv = g[0] + 2.0 * np.sum((1.0 - k / h) * g[1:])  # Bartlett weights with lag h - 1: 1 - k / (lag + 1)
    hln = (n + 1 - 2 * h + h * (h - 1) / n) / n
    if not lrv > 0 or not hln > 0:
        return DMResult(mean, float("nan"), float("nan"), n)
    t = mean / np.sqrt(lrv / n) * np.sqrt(hln)
    return DMResult(mean, float(t), _two_sided_p(float(t), n - 1), n)


def _hac_meat(xu: np.ndarray, lags: int) -> np.ndarray:
    """Newey–West (Bartlett) sum of score outer products: xu [n, k] (rows x_t u_t) -> [k, k]."""
    s = xu.T @ xu
    n = len(xu)
    for lag in range(1, min(int(lags), n - 1) + 1):
        gam = xu[lag:].T @ xu[:-lag]
        s += (1.0 - lag / (lags + 1.0)) * (gam + gam.T)
    return s


def mincer_zarnowitz(pred: np.ndarray, realised: np.ndarray, lags: int = 0) -> dict[str, float]:
    """Mincer–Zarnowitz regression ``realised = alpha + beta * pred`` and the test of alpha=0, beta=1.

    OLS on the pairs where both are finite; covariance of (alpha, beta) by Newey–West with ``lags``
    (0: White's heteroskedasticity-robust HC0); the joint hypothesis is a Wald test,
    ``W = r' V^-1 r`` with ``r = (alpha, beta - 1)``, against chi-squared with 2 degrees of freedom.

    Args:
        pred, realised: [n] forecasts and outcomes.
        lags: HAC lag (``horizon - 1`` for overlapping multi-step forecasts).

    Returns:
        ``{alpha, beta, r2, wald, p, n}`` (NaN when fewer than 3 pairs or a constant forecast).
    """
    x = np.asarray(pred, dtype=np.float64).ravel()
    y = np.asarray(realised, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"pred and realised need the same length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    nan = float("nan")
    if n < 3 or not np.ptp(x) > 0:
        return {"alpha": nan, "beta": nan, "r2": nan, "wald": nan, "p": nan, "n": n}
    design = np.column_stack([np.ones(n), x])
    bread = np.linalg.inv(design.T @ design)
    coef = bread @ design.T @ y
    resid = y - design @ coef
    tss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else nan
    cov = bread @ _hac_meat(design * resid[:, None], lags) @ bread
    r = coef - np.array([0.0, 1.0])
    try:
        wald = float(r @ np.linalg.solve(cov, r))
    except np.linalg.LinAlgError:
        wald = nan
    p = float(sps.chi2.sf(wald, 2)) if np.isfinite(wald) else nan
    return {"alpha": float(coef[0]), "beta": float(coef[1]), "r2": r2, "wald": wald, "p": p, "n": n}


# ----------------------------------------------------------------------------------------------------
# Resampling


def moving_block_indices(n: int, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap indices: [n_boot, n], each row ``ceil(n / block)`` blocks of consecutive
    positions starting uniformly in ``0..n - block``, concatenated and cut to n."""
    blocks = -(-n // block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, blocks * block)
    return idx[:, :n]


def block_bootstrap_ci(x: np.ndarray | pd.Series, stat: Callable[[np.ndarray], float] = np.mean,
                       block: int | None = None, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``stat`` by the moving-block bootstrap over the time index.

    Args:
        x: [n] or [n, ...] in time order (rows = dates); rows with a non-finite value are dropped.
        stat: maps a resampled array (same trailing shape) to a number.
        block: block length in rows; default ``max(1, round(n ** (1/3)))`` (Hall et al. 1995's rate).
        n_boot: resamples; level: coverage; seed: the generator's seed (same seed, same interval).

    Returns:
        (lo, hi); (NaN, NaN) with fewer than 2 rows.
    """
    a = np.asarray(x, dtype=np.float64)
    rows_ok = np.isfinite(a.reshape(len(a), -1)).all(axis=1) if a.ndim else np.array([], dtype=bool)
    a = a[rows_ok]
    n = len(a)
    if n < 2:
        return float("nan"), float("nan")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    b = max(1, int(round(n ** (1.0 / 3.0)))) if block is None else int(block)
    if not 1 <= b <= n:
        raise ValueError(f"block must be in 1..{n}, got {block}")
    idx = moving_block_indices(n, b, int(n_boot), np.random.default_rng(seed))
    values = np.array([stat(a[row]) for row in idx], dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


def permutation_pvalue(frame: pd.DataFrame, signal_col: str, label_col: str, by: str = "datetime",
                       n_perm: int = 200, seed: int = 0) -> float:
    """Two-sided permutation p-value of the mean daily RankIC.

    Under the null the signal carries no information about the label within a date, so the signal's
    ranks are shuffled among the instruments of each date (dates and the label untouched) ``n_perm``
    times; ``p = (1 + #{|mean RankIC_perm| >= |mean RankIC|}) / (1 + n_perm)`` (never 0). NaN when no
    date has a defined RankIC.
    """
    dates, codes, s, l = _rank_ready(frame, signal_col, label_col, by, "spearman")
    g = len(dates)
    den = np.sqrt(np.bincount(codes, weights=s * s, minlength=g) * np.bincount(codes, weights=l * l, minlength=g))
    ok = den > 0
    if not ok.any():
        return float("nan")

    def mean_ic(signal: np.ndarray) -> float:
        num = np.bincount(codes, weights=signal * l, minlength=g)
        return float(np.mean(num[ok] / den[ok]))  # per-date denominators do not change under shuffling

    observed = abs(mean_ic(s))
    rng = np.random.default_rng(seed)
    order_by_date = np.argsort(codes, kind="stable")
    sorted_codes = codes[order_by_date]
    hits = 0
    for _ in range(int(n_perm)):
        # positions sorted by (date, random key): a uniform shuffle within each date's block
        perm_in_sorted = np.lexsort((rng.random(len(codes)), sorted_codes))
        shuffled = np.empty_like(s)
        shuffled[order_by_date] = s[order_by_date][perm_in_sorted]
        hits += abs(mean_ic(shuffled)) >= observed - 1e-12
    return (1.0 + hits) / (1.0 + int(n_perm))
