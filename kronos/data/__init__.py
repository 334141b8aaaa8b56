"""Kronos data: features, causal normalisation, sources (synthetic, CSV, Parquet, Qlib, mixtures), window store, datamodule.

Names are imported lazily so that ``kronos.data.features`` (used by inference) does not pull in
Lightning or Qlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CSVSource": "kronos.data.csv_source",
    "read_ohlcv_csv": "kronos.data.csv_source",
    "KronosDataModule": "kronos.data.datamodule",
    "MixtureSource": "kronos.data.mixture",
    "per_device_batch_size": "kronos.data.datamodule",
    "DataValidationError": "kronos.data.errors",
    "Panel": "kronos.data.panel",
    "ParquetSource": "kronos.data.parquet_source",
    "QlibSource": "kronos.data.qlib_source",
    "Source": "kronos.data.source",
    "SourceBase": "kronos.data.source",
    "SyntheticSource": "kronos.data.synthetic",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kronos.data' has no attribute {name!r}")
