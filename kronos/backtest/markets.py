"""Market rules: lot size, daily price limits by board and date, and when a stock cannot trade.

``cn`` (China A-shares): lots of 100 shares; a move from the previous close to the deal price at the
board's limit blocks buying (limit-up) or selling (limit-down). The limits follow the rule dates:
ChiNext (SZ300xxx, SZ301xxx, and SZ302xxx, the codes issued since 2025) 10 % before 2020-08-24 and 20 %
from that day; STAR (SH688xxx, SH689xxx) 20 % from its start (2019-07-22); Beijing (BJxxxxxx, or codes
8xxxxx, 43xxxx, 92xxxx) 30 %; the main board and unknown codes 10 %. ST stocks (5 %) cannot be told
apart: the data carries no names or ST flags, so they are treated as main board (a 5 % ST limit-up is
then not blocked). ``us``: whole shares, no limits. ``none`` (crypto and other markets): fractional
amounts, no limits.

Whatever the rule, a day with zero or missing volume, or no price, is a suspension: nothing can be
bought or sold that day (Qlib alone would trade it at a forward-filled stale close).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pandas as pd

REGION_QLIB = {"cn": "cn", "us": "us", "none": "us"}  # qlib.init region (Qlib knows cn/us/tw only)
LOT_SIZE: dict[str, float | None] = {"cn": 100.0, "us": 1.0, "none": None}  # None: fractional amounts
# A limit move is detected slightly inside the nominal limit: prices are rounded to the tick (0.01),
# so a 10 % limit-up of a cheap stock can print as +9.6 %.
LIMIT_MARGIN = 0.005
_CHINEXT = re.compile(r"^SZ30[0-2]\d{3}$")
_STAR = re.compile(r"^SH68[89]\d{3}$")
_BEIJING = re.compile(r"^(BJ\d{6}|(?:[A-Z]{2})?(?:8\d{5}|43\d{4}|92\d{4}))$")
CHINEXT_20_FROM = pd.Timestamp("2020-08-24")  # ChiNext's registration reform: 10 % -> 20 %
# Every common spelling of an A-share code: SH600000, sh600000, 600000.SH, 600000.SS, 600000.XSHG, SHSE.600000,
# sh.600000, SH_600000 (Qlib symbols turn punctuation into '_'), or the bare number.
_CN_CODE = re.compile(r"^(?:(?P<pre>SH|SZ|BJ|SS|SHSE|SZSE|BSE|XSHG|XSHE|XBSE)[._]?)?(?P<num>\d{6})"
                      r"(?:[._](?P<suf>SH|SZ|BJ|SS|SHSE|SZSE|BSE|XSHG|XSHE|XBSE))?$")
_EXCHANGE = {"SH": "SH", "SS": "SH", "SHSE": "SH", "XSHG": "SH", "SZ": "SZ", "SZSE": "SZ", "XSHE": "SZ",
             "BJ": "BJ", "BSE": "BJ", "XBSE": "BJ"}


def cn_code(instrument: str) -> str:
    """An A-share code in Qlib's spelling (``SH600000``) from any common one (see ``_CN_CODE``); a bare number
    takes its exchange from its first digits (6, 9: Shanghai; 8, 43, 92: Beijing; else Shenzhen). Anything
    else comes back upper-cased."""
    code = str(instrument).strip().upper()
    match = _CN_CODE.match(code)
    if not match:
        return code
    num, exchange = match["num"], match["pre"] or match["suf"]
    if exchange is None:
        exchange = "BJ" if num.startswith(("8", "43", "92")) else "SH" if num.startswith(("6", "9")) else "SZ"
    return _EXCHANGE[exchange] + num


def resolve_region(setting: str, source_region: str | None) -> str:
    """``auto`` becomes the data source's region (Qlib data) or ``none`` (CSV, synthetic)."""
    if setting != "auto":
        return setting
    return source_region if source_region in ("cn", "us") else "none"


def cn_limit(instrument: str, dates: pd.DatetimeIndex) -> np.ndarray:
    """The nominal daily price limit of a China A-share code on each of ``dates`` (float [len(dates)]),
    e.g. ``SZ300750``: 0.10 before 2020-08-24, 0.20 from then; ``SH600000``: 0.10; ``BJ830799``: 0.30
    (any spelling :func:`cn_code` reads: ``300750.SZ``, ``sz300750``, ``300750.XSHE``, ...).

    Found on the shared CSI300 data: ChiNext codes continue in SZ302xxx (e.g. SZ302132, formerly SZ300114)."""
    code = cn_code(instrument)
    dates = pd.DatetimeIndex(dates)
    if _CHINEXT.match(code):
        return np.where(dates >= CHINEXT_20_FROM, 0.20, 0.10)
    if _STAR.match(code):
        return np.full(len(dates), 0.20)
    if _BEIJING.match(code):
        return np.full(len(dates), 0.30)
    return np.full(len(dates), 0.10)


def limits(instruments: list[str] | pd.Index, dates: pd.DatetimeIndex, region: str,
           threshold: float | str | None) -> pd.DataFrame:
    """The |return from the previous close| at which each instrument is limit-up/down on each date
    (inf: no limit), wide [dates x instruments].

    Args:
        instruments: Qlib symbols.
        dates: the dates (rule changes apply from their day).
        region: ``cn``, ``us`` or ``none`` (resolved).
        threshold: ``region`` (the region's rule), a uniform fraction, or None (no limits).
    """
    columns, index = pd.Index(instruments, name="instrument"), pd.DatetimeIndex(dates)
    if threshold is None or (threshold == "region" and region != "cn"):
        return pd.DataFrame(np.inf, index=index, columns=columns)
    if threshold != "region":
        return pd.DataFrame(float(threshold), index=index, columns=columns)
    return pd.DataFrame({c: cn_limit(c, index) - LIMIT_MARGIN for c in columns}, index=index, columns=columns)


def suspended(close: pd.DataFrame, volume: pd.DataFrame) -> pd.DataFrame:
    """True where a stock cannot trade: no price, missing volume, or zero volume.

    ``close``/``volume``: wide [dates x instruments]. An instrument whose data has no volume at all
    (all zero or missing, e.g. a CSV without a volume column) is judged by its price alone.
    """
    has_volume = (volume.fillna(0.0) > 0).any(axis=0)
    no_volume = volume.isna() | (volume <= 0)
    return close.isna() | (no_volume & has_volume)


def limit_moves(close: pd.DataFrame, region: str, threshold: float | str | None,
                deal: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(limit-up, limit-down), wide bool [dates x instruments]: the deal price (``deal``, default the
    close) against the previous row's close is at or beyond the board's limit of that date."""
    deal = close if deal is None else deal
    ret = deal / close.ffill().shift(1) - 1.0
    lim = limits(list(close.columns), close.index, region, threshold)
    return ret.ge(lim).fillna(False).astype(bool), ret.le(-lim).fillna(False).astype(bool)


class Tradability(NamedTuple):
    """What the market allows, wide bool [dates x instruments]: ``buy_blocked`` (suspended or at limit-up),
    ``sell_blocked`` (suspended or at limit-down), ``limit_up`` (at limit-up and trading) and ``suspended``."""

    buy_blocked: pd.DataFrame
    sell_blocked: pd.DataFrame
    limit_up: pd.DataFrame
    suspended: pd.DataFrame


def tradability(close: pd.DataFrame, volume: pd.DataFrame, region: str, threshold: float | str | None,
                deal: pd.DataFrame | None = None) -> Tradability:
    """When each name cannot be bought or sold (the one statement of the rules; the portfolio's exchange reads it).

    Buying is blocked on a suspension or at limit-up (deal price over the previous close - 1 >= limit);
    selling on a suspension or at limit-down. ``deal``: the deal-price field (default: the close; with
    ``deal_price=open`` the open, so an opening at limit-up blocks the morning's buy).
    """
    up, down = limit_moves(close, region, threshold, deal)
    halt = suspended(close, volume).astype(bool)
    return Tradability((halt | up).astype(bool), (halt | down).astype(bool), (up & ~halt).astype(bool), halt)
