"""Candle validity of forecast paths: the one de-normalisation of sample paths, its repair and its counts.

The tokenizer decodes each feature independently, so a de-normalised path can hold candles no market
prints: a price at or below zero (the price-level normalisation puts zero a few lookback standard
deviations below the mean, well inside the decoder's range), a high below the body or a low above it,
negative volume or amount. Every path the project returns (``KronosPredictor``, the CLI, the web UI, the
backtest and evaluate through :mod:`kronos.inference.decisions`) goes through :func:`candle_paths`, which
de-normalises and then repairs by one documented rule, and returns how many candles each rule touched.

The repair of one candle, in this order (a candle is counted once, under the first rule that applies):

1. ``nonpositive_price``: a price at or below zero.
   - open or close invalid: the body is meaningless, so the candle becomes a *flat candle at the
     previous valid close of the path* (open = high = low = close = that close; the last observed close
     for the first step). Carrying the last price forward is what a market without a print shows; it
     adds no move the model did not decode, and the path's later candles stay as decoded.
   - open and close valid, only high or low invalid: the body is kept and the bad wick is cut to it
     (low = min(open, close), high = max(open, close)), so a valid close is never thrown away.
2. ``wick``: every price positive, but high < max(open, close) or low > min(open, close): high and low
   are widened to cover the body (the smallest change that makes the candle possible).
3. ``negative_volume`` / ``negative_amount`` (counted apart from the price rules, on the same candles):
   a value that is not >= 0 becomes 0 (a quantity traded cannot be negative; 0 says "nothing traded").

Nothing is floored to a tiny positive number: a floored price turns into a log return of about -27 in
any score that takes logs. Non-finite values are not candles to repair (a diverged model or non-finite
input): they are left as they are, so the callers' own checks refuse them with their message. A normalisation in which prices and volume are positive by construction
simply counts zero here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from kronos.data.features import FEATURES, NORM_EPS, denormalize
from kronos.data.transforms import LEVEL, decode

REPAIR_FIELDS: tuple[str, ...] = ("candles", "nonpositive_price", "negative_volume", "negative_amount", "wick")


@dataclass(frozen=True)
class CandleRepairs:
    """How many candles of a set of paths each repair rule touched (see the module docstring).

    Attributes:
        candles: candles looked at (paths x steps).
        nonpositive_price: candles with a price at or below zero.
        negative_volume, negative_amount: candles whose volume / amount was set from < 0 to 0.
        wick: candles (all prices positive) whose high or low was widened to cover open and close.
    """

    candles: int = 0
    nonpositive_price: int = 0
    negative_volume: int = 0
    negative_amount: int = 0
    wick: int = 0

    def __add__(self, other: "CandleRepairs") -> "CandleRepairs":
        if not isinstance(other, CandleRepairs):
            return NotImplemented
        return CandleRepairs(*(getattr(self, f) + getattr(other, f) for f in REPAIR_FIELDS))

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (JSON-ready)."""
        return {k: int(v) for k, v in asdict(self).items()}

    def shares(self) -> dict[str, float | None]:
        """Each repair count over ``candles`` (None when there were no candles)."""
        return {f: (getattr(self, f) / self.candles if self.candles else None) for f in REPAIR_FIELDS[1:]}

    def report(self) -> dict[str, Any]:
        """The ``candle_repairs`` block of a metrics.json: the counts plus ``share`` of each over ``candles``."""
        return {**self.as_dict(), "share": self.shares(), "rule": RULE}

    @property
    def repaired(self) -> int:
        """Candles touched by any price rule (volume and amount are counted apart)."""
        return self.nonpositive_price + self.wick

    def summary(self) -> str:
        """One line for a front end's summary, e.g. ``candles repaired: 3 non-positive price, ... of 200``."""
        parts = [f"{getattr(self, f)} {f.replace('_', ' ')}" for f in REPAIR_FIELDS[1:]]
        return f"candle repairs (of {self.candles} candles): " + ", ".join(parts)

    @classmethod
    def from_array(cls, counts: np.ndarray) -> "CandleRepairs":
        """From per-path (or per-window) counts ``[..., len(REPAIR_FIELDS)]``, summed over the leading axes."""
        total = np.asarray(counts, dtype=np.int64).reshape(-1, len(REPAIR_FIELDS)).sum(axis=0)
        return cls(*(int(v) for v in total))


COLUMN_PREFIX = "repairs_"


def repair_columns(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-window counts int [B, len(REPAIR_FIELDS)] as table columns ``repairs_<field>`` (e.g. signals.csv)."""
    return {COLUMN_PREFIX + f: np.asarray(counts)[:, k].astype(np.int64) for k, f in enumerate(REPAIR_FIELDS)}


def repairs_of_table(table: Any) -> CandleRepairs:
    """The total counts of a table holding :func:`repair_columns` (a DataFrame or a mapping of columns)."""
    return CandleRepairs(*(int(np.asarray(table[COLUMN_PREFIX + f]).sum()) for f in REPAIR_FIELDS))


def repairs_block(by_model: Mapping[str, CandleRepairs]) -> dict[str, Any]:
    """A run's ``candle_repairs`` block when several models forecast: the total report plus ``by_model``."""
    total = sum(by_model.values(), CandleRepairs())
    return {**total.report(), "by_model": {name: {**r.as_dict(), "share": r.shares()} for name, r in by_model.items()}}


RULE = ("non-positive open/close: flat candle at the previous valid close of the path; non-positive high/low "
        "only: wick cut to the body; high/low widened to cover open and close; negative volume/amount -> 0")


def _column(features: Sequence[str], name: str) -> int | None:
    return list(features).index(name) if name in features else None


def repair_candles(paths: np.ndarray, last_close: np.ndarray | float, features: Sequence[str] = FEATURES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Make every candle of ``paths`` possible by the rules of the module docstring.

    Args:
        paths: float [..., H, F] de-normalised sample paths (columns ``features``; ``close`` required).
        last_close: the last observed close before each path, broadcastable to ``paths.shape[:-2]``: the
            price a flat candle takes when no earlier candle of its path has a valid close.
        features: the F column names.

    Returns:
        (repaired float32 [..., H, F], counts int64 [..., len(REPAIR_FIELDS)] per path).

    Raises:
        ValueError: ``close`` is not among the features, or a ``last_close`` is not a positive number.
    """
    out = np.array(paths, dtype=np.float32, copy=True)
    if out.ndim < 2 or out.shape[-1] != len(features):
        raise ValueError(f"paths of shape {out.shape} do not end in [H, F={len(features)}] ({list(features)})")
    c = _column(features, "close")
    if c is None:
        raise ValueError(f"candle repair needs a close column; the features are {list(features)}")
    lead, H = out.shape[:-2], out.shape[-2]
    anchor = np.broadcast_to(np.asarray(last_close, dtype=np.float64), lead)
    if not np.all(np.isfinite(anchor) & (anchor > 0)):
        raise ValueError("the last observed close before a forecast must be a positive number")
    price_cols = [i for i in (_column(features, n) for n in ("open", "high", "low", "close")) if i is not None]
    body_cols = [i for i in (_column(features, n) for n in ("open", "close")) if i is not None]
    prices = out[..., price_cols]
    bad_price = (prices <= 0).any(axis=-1)                                # [..., H]; NaN compares False: left alone
    bad_body = (out[..., body_cols] <= 0).any(axis=-1)
    # previous valid close: forward fill of the closes of candles with a valid body, seeded by last_close
    steps = np.broadcast_to(np.arange(H), bad_body.shape)
    last_valid = np.maximum.accumulate(np.where(bad_body, -1, steps), axis=-1)
    filled = np.take_along_axis(out[..., c], np.maximum(last_valid, 0), axis=-1).astype(np.float64)
    prev_close = np.concatenate([anchor[..., None], np.where(last_valid >= 0, filled, anchor[..., None])[..., :-1]],
                                axis=-1)
    flat = np.broadcast_to(prev_close[..., None], (*bad_body.shape, len(price_cols)))
    out[..., price_cols] = np.where(bad_body[..., None], flat, out[..., price_cols])
    wick = np.zeros_like(bad_price)
    o, h, lo = (_column(features, n) for n in ("open", "high", "low"))
    top = out[..., c] if o is None else np.maximum(out[..., o], out[..., c])
    bottom = out[..., c] if o is None else np.minimum(out[..., o], out[..., c])
    for col, bound, outside in ((h, top, np.less), (lo, bottom, np.greater)):
        if col is None:
            continue
        broken = (out[..., col] <= 0) | outside(out[..., col], bound)
        wick |= broken
        out[..., col] = np.where(broken, bound, out[..., col])
    counts = np.zeros((*lead, len(REPAIR_FIELDS)), dtype=np.int64)
    counts[..., 0] = H
    counts[..., 1] = bad_price.sum(axis=-1)
    counts[..., 4] = (wick & ~bad_price).sum(axis=-1)
    for k, name in ((2, "volume"), (3, "amount")):
        j = _column(features, name)
        if j is not None:
            negative = out[..., j] < 0
            counts[..., k] = negative.sum(axis=-1)
            out[..., j] = np.where(negative, 0.0, out[..., j])
    return out, counts


def scale_spread(paths: np.ndarray, last_close: np.ndarray | float, spread: float,
                 features: Sequence[str] = FEATURES) -> np.ndarray:
    """Paths whose log prices, measured from the last observed close, are multiplied by ``spread``.

    Every price p of a path (open, high, low and close alike) becomes ``last_close * (p / last_close) **
    spread``: the paths fan out (``spread`` > 1) or in (< 1) around the last close by one factor at every step.
    The map is increasing and positive, so a possible candle stays possible (order of open, high, low, close
    kept, prices > 0); volume and amount are untouched. ``spread`` 1 returns ``paths`` as they are. This is
    the second knob of the calibration (:mod:`kronos.calibration`), beside the temperature: when the
    decoder's range bounds how far the temperature can widen the paths, it is what brings the intervals to
    their nominal coverage.

    Args:
        paths: float [..., H, F] possible candles (after :func:`repair_candles`); prices positive.
        last_close: the last observed close before each path, broadcastable to ``paths.shape[:-2]``.
        spread: the factor (> 0).
    """
    if spread == 1.0:
        return paths
    if not spread > 0:
        raise ValueError(f"spread must be positive, got {spread!r}")
    out = np.array(paths, dtype=np.float32, copy=True)
    cols = [i for i in (_column(features, n) for n in ("open", "high", "low", "close")) if i is not None]
    anchor = np.broadcast_to(np.asarray(last_close, dtype=np.float64), out.shape[:-2])[..., None, None]
    prices = out[..., cols].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = anchor * np.exp(spread * np.log(prices / anchor))
    out[..., cols] = np.where(prices > 0, scaled, prices)  # non-finite values stay as they are (see repair_candles)
    return out


def candle_paths(z: np.ndarray, mean: np.ndarray, std: np.ndarray, last_close: np.ndarray | float,
                 features: Sequence[str] = FEATURES, normalization: str = LEVEL, spread: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The one de-normalisation of forecast paths: normalised ``z`` to possible candles in price units.

    Args:
        z: float [..., H, F] normalised sample paths; mean, std: float [..., F] the lookback statistics
            (broadcast as in :func:`kronos.data.features.denormalize`).
        last_close: the last observed close before each path, broadcastable to ``z.shape[:-2]``.
        features: the F column names (``close`` required).
        normalization: the predictor's inputs (:mod:`kronos.data.transforms`): ``level`` de-normalises price
            levels; ``returns`` rebuilds prices from ``last_close`` (positive by construction), and the wicks,
            volume and amount its inverse maps from < 0 to 0 are counted here as ``wick`` /
            ``negative_volume`` / ``negative_amount`` repairs.
        spread: the calibrated fan-out of the repaired paths around ``last_close`` (:func:`scale_spread`;
            1: as decoded).

    Returns:
        (paths float32 [..., H, F], repair counts int64 [..., len(REPAIR_FIELDS)] per path): see
        :func:`repair_candles`.
    """
    z = np.asarray(z)
    if normalization == LEVEL:
        paths, counts = repair_candles(denormalize(z, mean, std), last_close, features)
        return scale_spread(paths, last_close, spread, features), counts
    anchor = np.broadcast_to(np.asarray(last_close, dtype=np.float64), z.shape[:-2])
    decoded = decode(z, mean, std, anchor, normalization)
    paths, counts = repair_candles(decoded, last_close, features)
    paths = scale_spread(paths, last_close, spread, features)
    t = z.astype(np.float64) * (np.asarray(std)[..., None, :] + NORM_EPS) + np.asarray(mean)[..., None, :]
    clipped = {"wick": (t[..., 1:3] < 0).any(axis=-1), "negative_volume": t[..., 4] < 0,
               "negative_amount": t[..., 5] < 0}  # [..., H] each: what decode mapped to 0
    for name, hit in clipped.items():
        counts[..., REPAIR_FIELDS.index(name)] += hit.sum(axis=-1)
    return paths, counts


__all__ = ["CandleRepairs", "REPAIR_FIELDS", "RULE", "candle_paths", "repair_candles", "repair_columns",
           "repairs_block", "repairs_of_table", "scale_spread"]
