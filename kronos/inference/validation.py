"""Checks on what a user passes to KronosPredictor, each failing with one message that says what to fix."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from kronos.data.errors import quoted
from kronos.data.features import FEATURES, PRICE_COLUMNS, feature_matrix
from kronos.errors import KronosUserError


class ForecastInputError(KronosUserError, ValueError):
    """An input to KronosPredictor is malformed (names the argument, column or row, and the fix)."""


def history_matrix(df: Any, name: str = "df") -> np.ndarray:
    """Validated history features float32 [L, 6] (missing volume/amount filled) from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise ForecastInputError(f"{name} must be a pandas DataFrame with columns {list(PRICE_COLUMNS)}, got {type(df).__name__}")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise ForecastInputError(
            f"{name} is missing price column(s) {missing}; it has {list(df.columns)}. "
            f"Rename your columns to {list(PRICE_COLUMNS)} (volume and amount are optional)"
        )
    if len(df) == 0:
        raise ForecastInputError(f"{name} has no rows; pass at least one history row")
    twice = sorted({str(c) for c in df.columns[df.columns.duplicated()] if c in FEATURES})
    if twice:
        raise ForecastInputError(f"{name} has column(s) {twice} more than once; keep one of each")
    present = [c for c in FEATURES if c in df.columns]
    for column in present:
        if not pd.api.types.is_numeric_dtype(df[column]):
            raise ForecastInputError(f"{name} column {quoted(column)} is not numeric (dtype {df[column].dtype}); convert it with pd.to_numeric")
        values = df[column].to_numpy(dtype=np.float64, na_value=np.nan)
        # inf would turn the whole lookback's mean/std (and so every forecast value) into NaN.
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad))
            kind = "NaN" if np.isnan(values[first]) else "inf"
            raise ForecastInputError(
                f"{name} column {quoted(column)} has {kind} at row {quoted(df.index[first])} ({int(bad.sum())} non-finite "
                f"value(s) in total); fill or drop those rows first (e.g. python -m data_pipelines.clean_csv)"
            )
    return feature_matrix(df)


def timestamp_index(timestamps: Any, expected_len: int, name: str, length_hint: str) -> pd.DatetimeIndex:
    """``timestamps`` as a DatetimeIndex of length ``expected_len``, or ForecastInputError."""
    if timestamps is None:
        raise ForecastInputError(f"{name} is required: pass {expected_len} datetimes ({length_hint})")
    values = timestamps.to_numpy() if isinstance(timestamps, (pd.Series, pd.Index)) else np.asarray(timestamps)
    if np.issubdtype(values.dtype, np.number) or values.dtype == bool:
        raise ForecastInputError(
            f"{name} holds {values.dtype} values, not datetimes; convert it with pd.to_datetime(...) first"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas' format-inference notice; failures still raise
            index = pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(f"{name} could not be read as datetimes ({exc}); pass datetime64 values") from exc
    if index.hasnans:
        raise ForecastInputError(f"{name} has missing (NaT) entries at position {int(np.argmax(index.isna()))}")
    if len(index) != expected_len:
        raise ForecastInputError(f"{name} has {len(index)} entries but {length_hint} is {expected_len}; they must match")
    if isinstance(timestamps, (pd.Series, pd.Index)) and timestamps.name is not None:
        index = index.rename(timestamps.name)
    return index
