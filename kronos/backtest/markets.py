"""Market rules: lot size, daily price limits by board, and when a stock cannot trade.

``cn`` (China A-shares): lots of 100 shares; a close-to-close move at the board's limit blocks buying
(limit-up) or selling (limit-down): 20 % for ChiNext (SZ300xxx, SZ301xxx, and SZ302xxx, the codes
issued since 2025) and STAR (SH688xxx, SH689xxx), 10 % for the main board. ST stocks (5 %) cannot be told apart: the data carries no
names or ST flags, so they are treated as main board (a 5 % ST limit-up is then not blocked).
Beijing (BJ) and unknown codes get the main board's 10 %. ``us``: whole shares, no limits.
``none`` (crypto and other markets): fractional amounts, no limits.

Whatever the rule, a day with zero or missing volume, or no price, is a suspension: nothing can be
bought or sold that day (Qlib alone would trade it at a forward-filled stale close).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

REGION_QLIB = {"cn": "cn", "us": "us", "none": "us"}  # qlib.init region (Qlib knows cn/us/tw only)
LOT_SIZE: dict[str, float | None] = {"cn": 100.0, "us": 1.0, "none": None}  # None: fractional amounts
# A limit move is detected slightly inside the nominal limit: prices are rounded to the tick (0.01),
# so a 10 % limit-up of a cheap stock can print as +9.6 %.
LIMIT_MARGIN = 0.005
_BOARD_20 = re.compile(r"^(SZ30[0-2]|SH68[89])\d{3}$")


def resolve_region(setting: str, source_region: str | None) -> str:
    """``auto`` becomes the data source's region (Qlib data) or ``none`` (CSV, synthetic)."""
    if setting != "auto":
        return setting
    return source_region if source_region in ("cn", "us") else "none"


def cn_limit(instrument: str) -> float:
    """The nominal daily price limit of a China A-share code (e.g. ``SZ300750`` -> 0.20, ``SH600000`` -> 0.10).

    Found on the shared CSI300 data: ChiNext codes continue in SZ302xxx (e.g. SZ302132, formerly SZ300114)."""
    return 0.20 if _BOARD_20.match(str(instrument).upper()) else 0.10


def limits(instruments: list[str] | pd.Index, region: str, threshold: float | str | None) -> pd.Series:
    """Per instrument, the |close-to-close return| at which it is limit-up/down (inf: no limit).

    Args:
        instruments: Qlib symbols.
        region: ``cn``, ``us`` or ``none`` (resolved).
        threshold: ``region`` (the region's rule), a uniform fraction, or None (no limits).
    """
    index = pd.Index(instruments, name="instrument")
    if threshold is None:
        return pd.Series(np.inf, index=index)
    if threshold != "region":
        return pd.Series(float(threshold), index=index)
    if region == "cn":
        return pd.Series([cn_limit(i) - LIMIT_MARGIN for i in index], index=index, dtype=float)
    return pd.Series(np.inf, index=index)


def suspended(close: pd.DataFrame, volume: pd.DataFrame) -> pd.DataFrame:
    """True where a stock cannot trade: no price, missing volume, or zero volume.

    ``close``/``volume``: wide [dates x instruments]. An instrument whose data has no volume at all
    (all zero or missing, e.g. a CSV without a volume column) is judged by its price alone.
    """
    has_volume = (volume.fillna(0.0) > 0).any(axis=0)
    no_volume = volume.isna() | (volume <= 0)
    return close.isna() | (no_volume & has_volume)


def tradability(close: pd.DataFrame, volume: pd.DataFrame, region: str,
                threshold: float | str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(buy blocked, sell blocked), wide bool [dates x instruments].

    Buying is blocked on a suspension or a limit-up close (return >= limit); selling on a suspension or a
    limit-down close (return <= -limit). The return is taken from the previous row with a price.
    """
    ret = close / close.ffill().shift(1) - 1.0
    lim = limits(list(close.columns), region, threshold)
    halt = suspended(close, volume)
    up = ret.ge(lim, axis=1).fillna(False)
    down = ret.le(-lim, axis=1).fillna(False)
    return (halt | up).astype(bool), (halt | down).astype(bool)
