"""ParquetSource: long Parquet files or folders, the CSV validation, streaming per symbol in row groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.data.csv_source import CSVSource
from kronos.data.errors import DataValidationError
from kronos.data.parquet_source import ParquetSource


def _market(symbols=("AAA", "BBB", "CCC"), n: int = 40, freq: str = "h") -> pd.DataFrame:
    frames = []
    for k, sym in enumerate(symbols):
        close = 10.0 + k + np.arange(n) * 0.05
        frames.append(pd.DataFrame({
            "Date": pd.date_range("2024-01-01", periods=n, freq=freq), "Ticker": sym, "Open": close,
            "High": close + 0.5, "Low": close - 0.5, "Close": close, "Vol": 100.0 + np.arange(n), "in_idx": k != 1,
            "comment": "not read",
        }))
    return pd.concat(frames, ignore_index=True)


def _parquet(df: pd.DataFrame, path: Path, row_group_size: int = 25) -> Path:
    df.to_parquet(path, row_group_size=row_group_size, index=False)
    return path


def test_same_panel_as_csv_and_streamed_in_symbol_order(tmp_path: Path) -> None:
    df = _market()
    pq_path = _parquet(df, tmp_path / "m.parquet")
    df.to_csv(tmp_path / "m.csv", index=False)
    csv_panel = CSVSource(tmp_path / "m.csv").load()
    source = ParquetSource(pq_path, batch_rows=16)  # batches cut through series and row groups
    panel = source.load()
    assert panel.instruments == csv_panel.instruments == ["AAA", "BBB", "CCC"]
    for i in range(3):
        np.testing.assert_array_equal(panel.values[i], csv_panel.values[i])
        np.testing.assert_array_equal(panel.timestamps[i], csv_panel.timestamps[i])
        np.testing.assert_array_equal(panel.member[i], csv_panel.member[i])
    items = list(source.iter_series())
    assert [s for s, *_ in items] == ["AAA", "BBB", "CCC"]
    for (sym, ts, values, member), i in zip(items, range(3)):
        assert ts.dtype == np.dtype("datetime64[ns]") and values.dtype == np.float32 and values.shape == (40, 6)
        assert values.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(values, panel.values[i])
        np.testing.assert_array_equal(member, panel.member[i])


def test_reads_only_needed_columns_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.parquet as pq

    path = _parquet(_market(n=100), tmp_path / "m.parquet")
    calls = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            calls.append((batch.num_rows, tuple(batch.schema.names)))
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail("the whole file must not be read at once"))
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("the whole file must not be read at once"))
    assert sum(len(t) for _, t, _, _ in ParquetSource(path, batch_rows=64).iter_series()) == 300
    assert len(calls) >= 300 // 64 and max(n for n, _ in calls) <= 64
    assert all("comment" not in names for _, names in calls)


def test_folder_of_files_symbol_spanning_files_and_stems(tmp_path: Path) -> None:
    df = _market(n=30)
    folder = tmp_path / "long"
    folder.mkdir()
    _parquet(df.iloc[:50], folder / "part-0.parquet")  # AAA, and BBB's first 20 rows
    _parquet(df.iloc[50:], folder / "part-1.parquet")  # BBB's last 10 rows, CCC
    items = list(ParquetSource(folder).iter_series())
    assert [(s, len(t)) for s, t, *_ in items] == [("AAA", 30), ("BBB", 30), ("CCC", 30)]

    per_symbol = tmp_path / "per_symbol"
    per_symbol.mkdir()
    for sym, g in df.groupby("Ticker"):
        _parquet(g.drop(columns=["Ticker"]), per_symbol / f"{sym.lower()}.parquet")
    panel = ParquetSource(per_symbol).load()
    assert panel.instruments == ["aaa", "bbb", "ccc"] and panel.n_rows == 90


def test_unsorted_symbols_name_the_first_out_of_order_row(tmp_path: Path) -> None:
    df = _market(n=30)
    order = list(range(30)) + list(range(60, 90)) + list(range(30, 60))  # AAA, CCC, BBB
    path = _parquet(df.iloc[order], tmp_path / "u.parquet")
    with pytest.raises(DataValidationError, match=r"u\.parquet: row 60 \(symbol 'BBB'\) comes after symbol 'CCC'.*"
                                                  r"sorted by symbol then time"):
        list(ParquetSource(path, batch_rows=16).iter_series())
    # in memory the order of symbols does not matter (as for CSV); interleaved by time also loads
    assert ParquetSource(path).load().instruments == ["AAA", "BBB", "CCC"]
    interleaved = _parquet(df.sort_values(["Date", "Ticker"]), tmp_path / "i.parquet")
    assert ParquetSource(interleaved).load().n_rows == 90


@pytest.mark.parametrize("swap, what", [((35, 36), "an unsorted"), (None, "a duplicated")])
def test_unsorted_or_duplicated_time_within_a_symbol(tmp_path: Path, swap, what: str) -> None:
    df = _market(n=30)
    if swap:
        df.loc[list(swap), "Date"] = df.loc[list(swap)[::-1], "Date"].to_numpy()
        row = 36
    else:
        df.loc[40, "Date"] = df.loc[39, "Date"]
        row = 40
    path = _parquet(df, tmp_path / "t.parquet", row_group_size=36)  # the offence straddles a batch boundary
    for read in (lambda s: list(s.iter_series()), lambda s: s.load()):
        with pytest.raises(DataValidationError, match=rf"{what} timestamp .* for symbol 'BBB' at row {row}"):
            read(ParquetSource(path, batch_rows=36))


def test_csv_validation_applies(tmp_path: Path) -> None:
    df = _market(n=30)
    df.loc[47, "High"] = np.inf
    with pytest.raises(DataValidationError, match=r"bad\.parquet: column 'high' has an infinite value \(inf\) at row 47"):
        ParquetSource(_parquet(df, tmp_path / "bad.parquet"), batch_rows=16).load()
    df = _market(n=30).assign(close=1.0)
    with pytest.raises(DataValidationError, match=r"columns 'Close' and 'close' are the same column"):
        ParquetSource(_parquet(df, tmp_path / "case.parquet")).load()
    df = _market(n=30)
    df.loc[5, "Vol"] = np.nan
    with pytest.raises(DataValidationError, match=r"column 'volume' has a missing value \(NaN\) at row 5.*on_nan=drop"):
        ParquetSource(_parquet(df, tmp_path / "nan.parquet")).load()
    assert ParquetSource(tmp_path / "nan.parquet", on_nan="drop").load().n_rows == 89
    with pytest.raises(DataValidationError, match=r"the symbol column 'name' is missing"):
        ParquetSource(tmp_path / "nan.parquet", symbol_column="name").load()
    with pytest.raises(DataValidationError, match=r"nope\.parquet: file not found"):
        ParquetSource(tmp_path / "nope.parquet").load()


def test_time_zones_and_native_types(tmp_path: Path) -> None:
    df = _market(n=10)
    df["Date"] = df["Date"].dt.tz_localize("Asia/Shanghai").astype("datetime64[us, Asia/Shanghai]")
    panel = ParquetSource(_parquet(df, tmp_path / "tz.parquet")).load()
    assert pd.Timestamp(panel.timestamps[0][0]) == pd.Timestamp("2023-12-31 16:00")  # converted to UTC
    assert panel.timestamps[0].dtype == np.dtype("datetime64[ns]")


@pytest.mark.parametrize("blank", [None, ""])
def test_a_missing_symbol_is_refused_not_a_series_named_nan(tmp_path: Path, blank) -> None:
    """Regression (hostile round): rows with a missing symbol became a series named 'nan'."""
    df = _market()
    df["Ticker"] = df["Ticker"].astype(object)
    df.loc[df.index[-1], "Ticker"] = blank
    path = _parquet(df, tmp_path / "m.parquet")
    for read in (lambda: list(ParquetSource(path).iter_series()), lambda: ParquetSource(path).load()):
        with pytest.raises(DataValidationError, match=r"column '.*' \(the symbol\) is missing at row"):
            read()
