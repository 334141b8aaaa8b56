"""Suspicious price rows: a close-to-close return that disagrees with the provider's ``$change``, or
that exceeds the market's daily limit by a wide margin (a split or bad tick in unadjusted data).

The provider's ``$change`` is stored as a fraction by csv_to_qlib and in percent by some Qlib
datasets (the shared CSI300 one): the unit is detected from the data (the scale under which most rows
agree) rather than assumed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos.backtest.markets import limits

# |return - $change| above this (a fraction: one percentage point) is a disagreement.
CHANGE_TOLERANCE = 0.01
# A move this far beyond the market's limit (a fraction) cannot be a genuine limit move.
LIMIT_MARGIN = 0.05
MAX_EXAMPLES = 10


def flag_rows(close: pd.DataFrame, change: pd.DataFrame | None, region: str,
              limit_threshold: float | str | None) -> pd.DataFrame:
    """Flag suspicious rows of wide [dates x instruments] closes (and the provider's ``$change``).

    Returns:
        One row per flagged (datetime, instrument) with ``return``, ``change`` (as a fraction; NaN
        without a provider change) and ``reason`` (``change_mismatch`` or ``beyond_limit``), sorted by
        date then instrument.
    """
    ret = close / close.ffill().shift(1) - 1.0
    frames = []
    if change is not None:
        change = change.reindex_like(close)
        frac = change / _change_scale(ret, change)
        mismatch = (ret - frac).abs() > CHANGE_TOLERANCE
        frames.append(_rows(mismatch, ret, frac, "change_mismatch"))
    else:
        frac = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
    lim = limits(list(close.columns), close.index, region, limit_threshold)
    if np.isfinite(lim.to_numpy()).any():
        beyond = ret.abs().gt(lim + LIMIT_MARGIN)
        frames.append(_rows(beyond, ret, frac, "beyond_limit"))
    if not frames:
        return pd.DataFrame(columns=["datetime", "instrument", "return", "change", "reason"])
    out = pd.concat(frames, ignore_index=True)
    # A row flagged for both reasons is reported once, as a change mismatch.
    out = out.drop_duplicates(["datetime", "instrument"], keep="first")
    return out.sort_values(["datetime", "instrument"], ignore_index=True)


def _change_scale(ret: pd.DataFrame, change: pd.DataFrame) -> float:
    """1.0 when ``change`` is a fraction, 100.0 when it is in percent (whichever matches more rows)."""
    r, c = ret.to_numpy().ravel(), change.to_numpy().ravel()
    ok = np.isfinite(r) & np.isfinite(c)
    if not ok.any():
        return 1.0
    hits = {scale: int((np.abs(r[ok] - c[ok] / scale) <= CHANGE_TOLERANCE).sum()) for scale in (1.0, 100.0)}
    return max(hits, key=hits.get)


def _rows(mask: pd.DataFrame, ret: pd.DataFrame, change: pd.DataFrame, reason: str) -> pd.DataFrame:
    mask = mask.fillna(False).astype(bool)
    stacked = mask.stack(future_stack=True)
    where = stacked[stacked].index
    return pd.DataFrame({
        "datetime": where.get_level_values(0),
        "instrument": where.get_level_values(1),
        "return": ret.stack(future_stack=True).reindex(where).to_numpy(),
        "change": change.stack(future_stack=True).reindex(where).to_numpy(),
        "reason": reason,
    })


def summary(flags: pd.DataFrame) -> dict[str, object]:
    """JSON-able: ``count``, counts ``by_reason`` and the first :data:`MAX_EXAMPLES` ``examples``."""
    examples = flags.head(MAX_EXAMPLES).assign(datetime=lambda f: f["datetime"].astype(str))
    return {"count": int(len(flags)),
            "by_reason": {str(k): int(v) for k, v in flags["reason"].value_counts().items()},
            "examples": examples.replace({np.nan: None}).to_dict(orient="records")}


def touched(flags: pd.DataFrame, decisions: pd.DataFrame, calendar: pd.DatetimeIndex) -> np.ndarray:
    """bool [len(decisions)]: the decision's date t, or t+1 / t+2 (its trade), is a flagged row of its instrument."""
    if flags.empty or decisions.empty:
        return np.zeros(len(decisions), bool)
    calendar = pd.DatetimeIndex(calendar)
    flagged = set(zip(flags["instrument"], pd.DatetimeIndex(flags["datetime"])))
    pos = calendar.searchsorted(pd.DatetimeIndex(decisions["datetime"]))
    out = np.zeros(len(decisions), bool)
    for k in range(3):
        at = np.minimum(pos + k, len(calendar) - 1)
        days = calendar[at]
        out |= np.array([(inst, day) in flagged for inst, day in zip(decisions["instrument"], days)])
    return out
