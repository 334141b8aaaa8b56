"""Return forecasting (the paper's return task): cross-sectional IC of the predicted H-step return.

Signal: the predicted return ``point forecast of the close at step H / last observed close - 1`` (the
point forecast is :func:`kronos.scores.point_forecast`, the median of the sample paths). Label: the
realised return to the last close that exists within the horizon (a series that stops trading is
scored on the move it made until then; one without any future close has no label and is counted).
Per decision date the Pearson IC and the Spearman RankIC across series; ``ic`` / ``rank_ic`` are their
means over dates and ``rank_ic_t`` the t over dates (HAC with the windows' overlap when stride < H).

The task's baselines are the strongest simple rules that see the same candles (:data:`RETURN_RULES`,
each a cross-sectional signal from the lookback alone, defined once in :mod:`kronos.rules`, as the
backtest's baselines): ``volume`` (abnormal volume: today's log volume minus its trailing 20-row mean),
``momentum`` (the close return over the last H rows), ``reversal`` (minus it) and ``low_vol`` (minus the
trailing 20-row volatility). Random-path baselines carry no cross-sectional information and are not
among them.

Invalid forecasts: a model's forecast of an origin is invalid when one of its sample paths holds a close
that is not a finite positive price. It is counted (``invalid``) and scored as a failure: the origin is
ranked at the wrong end of its date's cross-section (last when its realised return is above the date's
median, first otherwise), so it costs the RankIC as much as one forecast can.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kronos.rules import abnormal_volume, past_return, trailing_volatility
from kronos.stats import daily_ic, ic_summary

RETURN_RULES: tuple[str, ...] = ("volume", "momentum", "reversal", "low_vol")


def rule_signal(name: str, hist_raw: np.ndarray, features: tuple[str, ...] | list[str], horizon: int) -> np.ndarray:
    """The cross-sectional signal [N] of rule ``name`` from raw lookbacks [N, L, F] (NaN where undefined)."""
    feats = list(features)
    close = hist_raw[..., feats.index("close")]
    if name == "volume":
        if "volume" not in feats:
            return np.full(len(close), np.nan)
        return abnormal_volume(hist_raw[..., feats.index("volume")], axis=1)[:, -1]
    if name in ("momentum", "reversal"):
        past = past_return(close, horizon)
        return past if name == "momentum" else -past
    if name == "low_vol":
        return -trailing_volatility(close, axis=1)[:, -1]
    raise ValueError(f"unknown return rule {name!r}; the rules are {list(RETURN_RULES)}")


def fail_invalid(predicted: np.ndarray, invalid: np.ndarray, realised: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """``predicted`` [N] with each ``invalid`` origin moved to the wrong end of its date's cross-section.

    An origin whose realised return is above its date's median gets a signal below every valid one of the
    date; otherwise above every valid one (see the module docstring).
    """
    out = np.asarray(predicted, dtype=np.float64).copy()
    bad = np.asarray(invalid, dtype=bool)
    if not bad.any():
        return out
    frame = pd.DataFrame({"d": np.asarray(dates), "p": np.where(bad, np.nan, out), "y": realised})
    grouped = frame.groupby("d")
    low, high, mid = grouped["p"].transform("min"), grouped["p"].transform("max"), grouped["y"].transform("median")
    span = (high - low).fillna(0.0).to_numpy() + 1.0
    low = low.fillna(0.0).to_numpy() - span
    high = high.fillna(0.0).to_numpy() + span
    out[bad] = np.where(np.asarray(realised)[bad] > mid.to_numpy()[bad], low[bad], high[bad])
    return out


def realised_return(last_close: np.ndarray, future_close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return to the last existing close of the horizon: last_close [N], future_close [N, H].

    Returns:
        (return [N], NaN without any future close; partial [N] bool, the step-H close is missing).
    """
    future = np.asarray(future_close, dtype=np.float64)
    seen = np.isfinite(future)
    last_seen = np.where(seen.any(axis=1), seen.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1), -1)
    rows = np.arange(len(future))
    end = np.where(last_seen >= 0, future[rows, np.maximum(last_seen, 0)], np.nan)
    return end / np.asarray(last_close, dtype=np.float64) - 1.0, ~seen[:, -1]


def score_returns(predicted: np.ndarray, realised: np.ndarray, dates: np.ndarray, instruments: np.ndarray,
                  overlap: int, invalid: np.ndarray | None = None) -> dict[str, Any]:
    """The return task's row for one forecaster.

    Args:
        predicted, realised: [N] H-step returns; dates, instruments: [N].
        overlap: ``window_overlap(H, stride)``.
        invalid: bool [N] origins whose forecast is invalid (scored as failures by :func:`fail_invalid`).

    Returns:
        ``ic``, ``rank_ic``, ``rank_ic_t``, ``icir``, ``dates`` (with a defined RankIC), ``invalid`` (invalid
        forecasts with a label), and ``_loss`` {date: -RankIC} for the Diebold–Mariano test (dropped before writing).
    """
    bad = np.zeros(len(predicted), bool) if invalid is None else np.asarray(invalid, dtype=bool)
    predicted = fail_invalid(predicted, bad, realised, dates)
    frame = pd.DataFrame({"datetime": np.asarray(dates), "instrument": np.asarray(instruments, dtype=str),
                          "signal": np.asarray(predicted, dtype=np.float64),
                          "label": np.asarray(realised, dtype=np.float64)})
    frame = frame[np.isfinite(frame["signal"]) & np.isfinite(frame["label"])]
    pearson = daily_ic(frame, "signal", "label", by="datetime", method="pearson")
    spearman = daily_ic(frame, "signal", "label", by="datetime", method="spearman")
    pearson, spearman = pearson[np.isfinite(pearson)], spearman[np.isfinite(spearman)]
    rank = ic_summary(spearman, overlap=overlap) if len(spearman) else {"ic": np.nan, "icir": np.nan, "t": np.nan}
    return {
        "ic": float(pearson.mean()) if len(pearson) else float("nan"),
        "rank_ic": float(rank["ic"]),
        "rank_ic_t": float(rank["t"]),
        "icir": float(rank["icir"]),
        "dates": int(len(spearman)),
        "invalid": int((bad & np.isfinite(np.asarray(realised, dtype=np.float64))).sum()),
        "_loss": {int(d): -float(v) for d, v in spearman.items()},
    }
