"""read_ohlcv_csv / CSVSource: layouts, aliases, membership and every bad input's message."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.data.csv_source import CSVSource, read_ohlcv_csv
from kronos.data.errors import DataValidationError

CLEAN_HINT = "python -m data_pipelines.clean_csv"


def _frame(n: int = 30, start: str = "2024-01-01") -> pd.DataFrame:
    close = 10 + np.cumsum(np.linspace(-0.1, 0.1, n))
    return pd.DataFrame({
        "Date": pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d"),
        "Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Vol": np.arange(n) + 100.0,
    })


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "s.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_aliases_and_amount_filled(tmp_path: Path) -> None:
    df = read_ohlcv_csv(_write(tmp_path, _frame()))
    assert list(df.columns) == ["timestamps", "open", "high", "low", "close", "volume", "amount"]
    np.testing.assert_allclose(df["amount"], df["volume"] * df[["open", "high", "low", "close"]].mean(axis=1))
    assert df["timestamps"].dtype == "datetime64[ns]"


def test_missing_volume_gives_zero_volume_and_amount() -> None:
    csv = "timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n2024-01-02,1.5,2,1,1.8\n"
    df = read_ohlcv_csv(io.StringIO(csv), name="upload.csv")
    assert (df["volume"] == 0).all() and (df["amount"] == 0).all()


def test_folder_and_long_layouts_with_member(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    _write(folder, _frame(), "AAA.csv")
    _write(folder, _frame(25), "BBB.csv")
    panel = CSVSource(folder).load()
    assert panel.instruments == ["AAA", "BBB"] and [len(v) for v in panel.values] == [30, 25]
    assert panel.member is None

    long = pd.concat([_frame().assign(ticker="X", in_idx=1), _frame(20).assign(ticker="Y", in_idx=0)])
    long = long.sort_values("Date", kind="stable")  # interleaved symbols, as in real long files
    panel = CSVSource(_write(tmp_path, long, "long.csv")).load()
    assert panel.instruments == ["X", "Y"]
    assert panel.member[0].all() and not panel.member[1].any()
    assert (np.diff(panel.timestamps[1].astype(np.int64)) > 0).all()


def test_on_nan_drop(tmp_path: Path) -> None:
    df = _frame()
    df.loc[4, "Vol"] = np.nan
    assert len(read_ohlcv_csv(_write(tmp_path, df), on_nan="drop")) == 29


@pytest.mark.parametrize(
    "mutate, pattern, repairable",
    [
        (lambda d: d.drop(columns="Close"), r"missing column\(s\) \['close'\]", False),
        (lambda d: d.assign(Close=d["Close"].astype(object).where(d.index != 7, "n/a?")),
         r"column 'close' holds non-numeric text 'n/a\?' at row 7 \(line 9", True),
        (lambda d: d.assign(High=d["High"].where(d.index != 5)), r"column 'high' has a missing value \(NaN\) at row 5", True),
        (lambda d: d.assign(Date=d["Date"].where(d.index != 3, d["Date"][2])),
         r"column 'date' has a duplicated timestamp 2024-01-03.* at row 3", True),
        (lambda d: d.iloc[[0, 1, 3, 2] + list(range(4, len(d)))].reset_index(drop=True),
         r"column 'date' has an unsorted timestamp 2024-01-03.* at row 3", True),
        (lambda d: d.assign(Date=d["Date"].where(d.index != 6, "yesterday")),
         r"column 'date' has an unparseable timestamp 'yesterday' at row 6", True),
        (lambda d: d.drop(columns="Date"), r"no timestamp column", False),
    ],
)
def test_bad_input_messages(tmp_path: Path, mutate, pattern: str, repairable: bool) -> None:
    path = _write(tmp_path, mutate(_frame()), "bad.csv")
    with pytest.raises(DataValidationError, match=pattern) as err:
        read_ohlcv_csv(path)
    assert str(path) in str(err.value)
    assert (CLEAN_HINT in str(err.value)) == repairable


def test_missing_file_and_too_few_rows(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"nope\.csv: file not found"):
        read_ohlcv_csv(tmp_path / "nope.csv")
    with pytest.raises(DataValidationError, match=r"has 30 rows, fewer than the 101"):
        read_ohlcv_csv(_write(tmp_path, _frame()), min_rows=101)


def test_unsorted_within_symbol_names_symbol(tmp_path: Path) -> None:
    long = pd.concat([_frame().assign(symbol="A"), _frame().assign(symbol="B")]).reset_index(drop=True)
    long.loc[[35, 36], "Date"] = long.loc[[36, 35], "Date"].to_numpy()
    with pytest.raises(DataValidationError, match=r"for symbol 'B' at row 36"):
        read_ohlcv_csv(_write(tmp_path, long))


def test_rows_named_in_file_terms_after_dropping_nan(tmp_path: Path) -> None:
    df = _frame()
    df.loc[2, "Vol"] = np.nan
    df.loc[9, "Date"] = df.loc[8, "Date"]
    with pytest.raises(DataValidationError, match=r"duplicated timestamp .* at row 9 \(line 11"):
        read_ohlcv_csv(_write(tmp_path, df), on_nan="drop")
