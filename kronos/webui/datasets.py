"""Validated OHLCV series as the page sees them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from kronos.inference.frame import TIME_COLUMN, present_features


@dataclass(frozen=True)
class Dataset:
    """One validated series: ``frame`` as returned by ``read_ohlcv_csv``, ``name`` for display.

    ``incomplete``: {symbol: rows with a missing value} of a long file whose other symbols are intact
    (``kronos.inference.frame.read_long_frame``); those symbols are refused when chosen.
    """

    name: str
    frame: pd.DataFrame
    incomplete: dict[str, int] = field(default_factory=dict)

    def summary(self, dataset_id: str) -> dict[str, object]:
        """JSON description for the page: id, size, columns, time range and, for a long file, its symbols."""
        ts = self.frame[TIME_COLUMN]
        summary: dict[str, object] = {
            "id": dataset_id,
            "name": self.name,
            "rows": len(self.frame),
            "columns": present_features(self.frame),
            "first": ts.iloc[0].isoformat(),
            "last": ts.iloc[-1].isoformat(),
        }
        if "symbol" in self.frame.columns:
            summary["symbols"] = list(dict.fromkeys(self.frame["symbol"]))
        if self.incomplete:
            summary["incomplete_symbols"] = dict(self.incomplete)
        return summary
