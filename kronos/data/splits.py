"""Time-ordered splits on the common calendar: ratios or date ranges -> [start, end] per split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError

DEFAULT_SPLITS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}


def _end_of(value: Any) -> int:
    """An inclusive end in ns: a bare date covers its whole day (intraday data)."""
    ts = pd.Timestamp(value).as_unit("ns")
    if isinstance(value, str) and len(value.strip()) <= 10:
        ts = ts + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return ts.value


def resolve_splits(splits: Mapping[str, Any] | None, calendar: np.ndarray) -> dict[str, tuple[np.int64, np.int64]]:
    """Split boundaries as inclusive (start, end) int64 ns timestamps, in calendar order.

    Args:
        splits: ratios ``{train: 0.7, val: 0.15, test: 0.15}`` of the calendar's dates, taken in
            order, or dates ``{train: [start, end], ...}`` (inclusive; ``None`` = open end).
        calendar: sorted datetime64[ns] [D], the union of all instruments' timestamps.
    """
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if "train" not in splits:
        raise DataValidationError(f"data splits {splits} have no 'train' entry.")
    cal = np.asarray(calendar, dtype="datetime64[ns]").astype(np.int64)
    if len(cal) == 0:
        raise DataValidationError("data splits: the data has no rows.")
    if all(isinstance(v, (int, float)) for v in splits.values()):
        ratios = np.array(list(splits.values()), dtype=float)
        if (ratios < 0).any() or ratios.sum() > 1.0 + 1e-9:
            raise DataValidationError(f"data split ratios {splits} must be >= 0 and sum to at most 1.")
        cuts = np.round(np.cumsum(np.concatenate([[0.0], ratios])) * len(cal)).astype(int)
        out = {}
        for name, a, b in zip(splits, cuts[:-1], cuts[1:]):
            if b <= a:
                raise DataValidationError(f"data split '{name}' gets no dates of {len(cal)}; raise its ratio.")
            out[name] = (cal[a], cal[b - 1])
        return out
    out = {}
    for name, span in splits.items():
        if isinstance(span, str) or not isinstance(span, Sequence) or len(span) != 2:
            raise DataValidationError(
                f"data split '{name}': {span!r} is neither a ratio nor a [start, end] date pair; "
                "use ratios for all splits or date pairs for all."
            )
        start = cal[0] if span[0] is None else pd.Timestamp(span[0]).as_unit("ns").value
        end = cal[-1] if span[1] is None else _end_of(span[1])
        if end < start:
            raise DataValidationError(f"data split '{name}': end {span[1]} is before start {span[0]}.")
        out[name] = (np.int64(start), np.int64(end))
    return out
