"""``Panel``: what every data source returns, one contiguous float32 array per instrument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import pandas as pd

from kronos.data.errors import DataValidationError
from kronos.data.features import FEATURES, feature_matrix


@dataclass
class Panel:
    """Raw OHLCV series of several instruments, each on its own (sorted, unique) timestamps.

    Attributes:
        instruments: instrument names, in a fixed order.
        timestamps: per instrument, datetime64[ns] [T_i], strictly increasing.
        values: per instrument, float32 [T_i, 6] raw values in FEATURES order.
        member: per instrument, bool [T_i] point-in-time universe membership, or None (always a member).
        origin: where the data came from (file, folder or provider), for error messages.
    """

    instruments: list[str]
    timestamps: list[np.ndarray]
    values: list[np.ndarray]
    member: list[np.ndarray] | None = None
    origin: str = "<panel>"
    features: tuple[str, ...] = field(default=FEATURES)

    def __post_init__(self) -> None:
        n = len(self.instruments)
        if len(self.timestamps) != n or len(self.values) != n or (self.member is not None and len(self.member) != n):
            raise DataValidationError(f"{self.origin}: instruments, timestamps, values and member lengths differ")
        if len(set(self.instruments)) != n:
            raise DataValidationError(f"{self.origin}: instrument names are not unique")

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], origin: str = "<frames>") -> "Panel":
        """Build from {instrument: DataFrame with a sorted DatetimeIndex or `timestamps` column}.

        Frames need open/high/low/close; volume/amount are filled per the spec when absent; an
        optional boolean ``member`` column becomes the membership mask.
        """
        names, stamps, values, members = [], [], [], []
        has_member = any("member" in df.columns for df in frames.values())
        for name, df in frames.items():
            ts = df["timestamps"] if "timestamps" in df.columns else df.index
            names.append(str(name))
            stamps.append(pd.DatetimeIndex(ts).as_unit("ns").to_numpy())
            values.append(np.ascontiguousarray(feature_matrix(df)))
            if has_member:
                m = df["member"].to_numpy(dtype=bool) if "member" in df.columns else np.ones(len(df), bool)
                members.append(m)
        return cls(names, stamps, values, members if has_member else None, origin)

    @property
    def calendar(self) -> np.ndarray:
        """The common calendar: sorted union of all timestamps, datetime64[ns] [D]."""
        return np.unique(np.concatenate(self.timestamps)) if self.timestamps else np.array([], "datetime64[ns]")

    @property
    def n_rows(self) -> int:
        """Total number of rows over all instruments."""
        return int(sum(len(t) for t in self.timestamps))

    def iter_series(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
        """(symbol, timestamps datetime64[ns] [T], values float32 [T, 6], member bool [T] | None) per
        instrument, in the panel's order: the streaming interface of large sources, for in-RAM ones."""
        for i, name in enumerate(self.instruments):
            yield name, self.timestamps[i], self.values[i], None if self.member is None else self.member[i]

    def frame(self, instrument: str) -> pd.DataFrame:
        """One instrument as a DataFrame indexed by timestamp, columns FEATURES (+ member)."""
        i = self.instruments.index(instrument)
        df = pd.DataFrame(self.values[i], index=pd.DatetimeIndex(self.timestamps[i], name="datetime"),
                          columns=list(self.features))
        if self.member is not None:
            df["member"] = self.member[i]
        return df

    def field_frame(self, name: str = "close") -> pd.DataFrame:
        """One raw field as a wide DataFrame [calendar dates x instruments] (NaN where absent)."""
        col = self.features.index(name)
        series = {
            inst: pd.Series(v[:, col], index=pd.DatetimeIndex(t))
            for inst, t, v in zip(self.instruments, self.timestamps, self.values)
        }
        return pd.DataFrame(series).reindex(pd.DatetimeIndex(self.calendar, name="datetime"))
