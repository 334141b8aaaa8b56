"""Price-series forecasting (the paper's price task): how well the predicted path follows the realised one.

For each origin and each of open, high, low, close: the Pearson IC and the Spearman RankIC between the
predicted path (the point forecast, :func:`kronos.scores.point_forecast`: the median of the sample
paths) and the realised path over the H steps of the horizon,
on the steps where the realised value exists. Per origin they are averaged over the channels; ``ic``
and ``rank_ic`` are the means over origins, ``rank_ic_t`` the t of the per-date mean RankIC over
dates (HAC with the windows' overlap).

Invalid forecasts (a sample path with a price that is not finite and positive on a realised step) are
counted (``invalid``) and scored as failures: IC and RankIC -1 at that origin, the worst a path can score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from kronos.evaluate.tasks.comparison import per_date
from kronos.stats import mean_t

PRICE_CHANNELS: tuple[str, ...] = ("open", "high", "low", "close")
MIN_STEPS = 3  # a correlation over fewer realised steps says nothing


def _masked_corr(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Pearson correlation along axis 1 of a, b [N, H, C] over the steps ``ok`` [N, H, C] -> [N, C]."""
    n = ok.sum(axis=1)
    a0 = np.where(ok, a, 0.0)
    b0 = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a0.sum(axis=1) / n, b0.sum(axis=1) / n
        da = np.where(ok, a - ma[:, None], 0.0)
        db = np.where(ok, b - mb[:, None], 0.0)
        cov = (da * db).sum(axis=1)
        var = (da * da).sum(axis=1) * (db * db).sum(axis=1)
        r = cov / np.sqrt(var)
    return np.where((n >= MIN_STEPS) & (var > 0), r, np.nan)


def _ranks(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Ranks along axis 1 of x [N, H, C] among the steps ``ok`` (average ranks for ties; NaN elsewhere)."""
    return rankdata(np.where(ok, x, np.nan), axis=1, nan_policy="omit")


def path_correlations(pred: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per origin and channel IC and RankIC of a predicted path against the realised one.

    Args:
        pred: [N, H, C] predicted path; real: [N, H, C] realised path (NaN where missing).

    Returns:
        (ic [N, C], rank_ic [N, C]); NaN where fewer than 3 steps exist or either path is flat.
    """
    pred = np.asarray(pred, dtype=np.float64)
    real = np.asarray(real, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(real)
    return _masked_corr(pred, real, ok), _masked_corr(_ranks(pred, ok), _ranks(real, ok), ok)


def _channel_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the channel axis of [N, C] of the finite values (NaN when none)."""
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(ok.any(axis=1), np.where(ok, values, 0.0).sum(axis=1) / ok.sum(axis=1), np.nan)


def score_price(pred: np.ndarray, real: np.ndarray, dates: np.ndarray, overlap: int,
                channels: tuple[str, ...] = PRICE_CHANNELS, invalid: np.ndarray | None = None) -> dict[str, Any]:
    """The price task's row for one forecaster.

    Args:
        pred: [N, H, C] point-forecast paths of ``channels``; real: [N, H, C] realised (NaN missing).
        dates: [N] decision dates; overlap: ``window_overlap(H, stride)``.
        invalid: bool [N] origins whose forecast is invalid (scored -1, see the module docstring).

    Returns:
        ``ic``, ``rank_ic``, ``rank_ic_t``, ``per_channel`` ({channel: {ic, rank_ic}}), ``origins``
        (with a defined score), ``undefined`` (origins without), ``invalid``, and ``_loss`` {date: -RankIC of the date}
        for the Diebold–Mariano test (dropped before writing).
    """
    ic, rank_ic = path_correlations(pred, real)
    ic_o, rank_o = _channel_mean(ic), _channel_mean(rank_ic)
    scorable = (np.isfinite(np.asarray(real, dtype=np.float64)).sum(axis=1) >= MIN_STEPS).any(axis=1)
    bad = scorable & (np.zeros(len(ic_o), bool) if invalid is None else np.asarray(invalid, dtype=bool))
    ic_o, rank_o = np.where(bad, -1.0, ic_o), np.where(bad, -1.0, rank_o)
    days, daily = per_date(rank_o, dates)
    t = mean_t(daily, overlap=overlap)
    defined = np.isfinite(rank_o)
    with np.errstate(invalid="ignore"):
        per_channel = {c: {"ic": float(np.nanmean(ic[:, k])) if np.isfinite(ic[:, k]).any() else None,
                           "rank_ic": float(np.nanmean(rank_ic[:, k])) if np.isfinite(rank_ic[:, k]).any() else None}
                       for k, c in enumerate(channels)}
    return {
        "ic": float(np.nanmean(ic_o)) if np.isfinite(ic_o).any() else float("nan"),
        "rank_ic": float(np.nanmean(rank_o)) if defined.any() else float("nan"),
        "rank_ic_t": float(t.t),
        "per_channel": per_channel,
        "origins": int(defined.sum()),
        "undefined": int((~defined).sum()),
        "invalid": int(bad.sum()),
        "_loss": {int(d): -float(v) for d, v in zip(days, daily)},
    }
