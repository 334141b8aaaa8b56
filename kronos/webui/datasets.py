"""Validated OHLCV series as the page sees them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kronos.cli.forecast import TIME_COLUMN, present_features


@dataclass(frozen=True)
class Dataset:
    """One validated series: ``frame`` as returned by ``read_ohlcv_csv``, ``name`` for display."""

    name: str
    frame: pd.DataFrame

    def summary(self, dataset_id: str) -> dict[str, object]:
        """JSON description for the page: id, size, columns and time range."""
        ts = self.frame[TIME_COLUMN]
        return {
            "id": dataset_id,
            "name": self.name,
            "rows": len(self.frame),
            "columns": present_features(self.frame),
            "first": ts.iloc[0].isoformat(),
            "last": ts.iloc[-1].isoformat(),
        }
