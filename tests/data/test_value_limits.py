"""Values and timestamps at the edges of what the model and pandas can represent: one message, never NaN batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.data.csv_source import read_ohlcv_csv
from kronos.data.errors import DataValidationError


def _write(path: Path, close: np.ndarray, volume: float = 100.0, start: str = "2024-01-01") -> Path:
    n = len(close)
    pd.DataFrame({"timestamps": pd.date_range(start, periods=n, freq="h").strftime("%Y-%m-%d %H:%M"), "open": close,
                  "high": close, "low": close, "close": close, "volume": np.full(n, volume)}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("close", "volume", "message"), [
    (np.full(40, 1e308), 100.0, "beyond the 1e\\+30"),  # inf in the float32 store: NaN batches
    (1e307 * (1 + np.arange(40) % 3), 100.0, "beyond the 1e\\+30"),
    (np.full(40, 1e-320), 100.0, "below the 1e-30"),  # 0 in float32: trains on zeros
    (np.where(np.arange(40) % 2, 1e300, 1e-300), 100.0, "1e\\+30"),
    (100 + np.arange(40.0), 1e308, "column 'volume'"),
    (np.full(40, 1e20), 1e20, "column 'amount' \\(volume x price\\)"),  # each fine, the product is not
])
def test_values_beyond_the_float32_store_are_refused(tmp_path: Path, close: np.ndarray, volume: float,
                                                      message: str) -> None:
    """Regression (hostile round): prices at the edge of the float range gave NaN batches or tracebacks."""
    with pytest.raises(DataValidationError, match=message):
        read_ohlcv_csv(_write(tmp_path / "x.csv", close, volume))


def test_timestamps_near_the_pandas_limits_are_read(tmp_path: Path) -> None:
    early = read_ohlcv_csv(_write(tmp_path / "early.csv", 100 + np.arange(40.0), start="1677-09-21 00:13"))
    late = read_ohlcv_csv(_write(tmp_path / "late.csv", 100 + np.arange(40.0), start="2262-04-09 00:00"))
    assert len(early) == len(late) == 40


def test_a_timestamp_past_2262_is_one_message(tmp_path: Path) -> None:
    path = _write(tmp_path / "oob.csv", 100 + np.arange(40.0))
    lines = path.read_text().splitlines()
    lines[-1] = "9999-12-31 00:00" + lines[-1][16:]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"'9999-12-31 00:00' at row 39 .*outside 1677-09-21\.\.2262-04-11"):
        read_ohlcv_csv(path)
