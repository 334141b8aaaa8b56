"""Issue 27: a folder of one long file per year keeps every year; symbols Qlib cannot tell apart are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_pipelines import csv_to_qlib
from kronos.data.csv_source import CSVSource
from kronos.data.errors import DataValidationError
from kronos.data.qlib_provider import build_provider, check_qlib_symbols, qlib_symbol


def _year(year: int, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC")) -> pd.DataFrame:
    days = pd.bdate_range(f"{year}-01-01", f"{year}-12-31")
    rows = []
    for k, sym in enumerate(symbols):
        close = 10.0 + k + np.sin(np.arange(len(days)) / 9.0) + (year - 2020)
        rows.append(pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "symbol": sym, "open": close,
                                  "high": close + 0.5, "low": close - 0.5, "close": close, "volume": 1000.0 + k}))
    return pd.concat(rows).sort_values(["date", "symbol"], kind="stable")


def _folder(tmp_path: Path, years=(2020, 2021, 2022)) -> Path:
    folder = tmp_path / "years"
    folder.mkdir()
    for y in years:
        _year(y).to_csv(folder / f"{y}.csv", index=False)
    return folder


def test_one_long_file_per_year_keeps_every_row(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    total = sum(len(_year(y)) for y in (2020, 2021, 2022))
    panel = CSVSource(folder).load()
    assert panel.n_rows == total
    assert panel.instruments == ["AAA", "BBB", "CCC"]
    for ts in panel.timestamps:
        assert (np.diff(ts.astype(np.int64)) > 0).all()
        assert pd.Timestamp(ts[0]).year == 2020 and pd.Timestamp(ts[-1]).year == 2022


def test_csv_to_qlib_writes_every_year(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    out = csv_to_qlib.main(["--csv", str(folder), "--out", str(tmp_path / "prov")])
    spans = (out / "instruments" / "all.txt").read_text().split()
    assert spans[:3] == ["AAA", "2020-01-01", "2022-12-30"]
    calendar = (out / "calendars" / "day.txt").read_text().split()
    assert len(calendar) == len(pd.bdate_range("2020-01-01", "2022-12-31"))


def test_identical_boundary_rows_are_read_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path, years=(2020,))
    extra = pd.concat([_year(2020).tail(3), _year(2021)])  # repeats the last day of 2020 identically
    extra.to_csv(folder / "2021.csv", index=False)
    panel = CSVSource(folder).load()
    assert panel.n_rows == len(_year(2020)) + len(_year(2021))


def test_overlapping_rows_that_disagree_are_refused_naming_files(tmp_path: Path) -> None:
    folder = _folder(tmp_path, years=(2020,))
    other = _year(2020).tail(6).copy()
    other["close"] = other["close"] * 1.01
    other["high"] = other["high"] * 1.02
    other.to_csv(folder / "2020_revised.csv", index=False)
    with pytest.raises(DataValidationError, match=r"symbol 'AAA': 2 timestamp\(s\).*2020.csv, .*2020_revised.csv"):
        CSVSource(folder).load()


def test_symbols_equal_up_to_case_name_both() -> None:
    with pytest.raises(DataValidationError, match=r"symbols 'aapl' and 'AAPL' are the same instrument"):
        check_qlib_symbols(["aapl", "MSFT", "AAPL"])


def test_provider_names_both_symbols(tmp_path: Path) -> None:
    df = _year(2020, ("X",)).drop(columns="symbol")
    df.index = pd.DatetimeIndex(df.pop("date"))
    with pytest.raises(DataValidationError, match=r"'BRK/B' and 'BRK.B'"):
        build_provider({"BRK/B": df, "BRK.B": df}, tmp_path / "p")


def test_non_ascii_symbol_is_usable_not_called_empty(tmp_path: Path) -> None:
    assert qlib_symbol("日経225") == "U65E5U7D4C225"
    assert qlib_symbol("BRK/B") == "BRK_B"
    df = _year(2020, ("X",)).drop(columns="symbol")
    df.index = pd.DatetimeIndex(df.pop("date"))
    out = build_provider({"日経225": df, "Ö": df}, tmp_path / "p")
    assert (out / "instruments" / "all.txt").read_text().split()[::3] == ["U65E5U7D4C225", "U00D6"]
    with pytest.raises(DataValidationError, match=r"symbol '--' has no letter or digit"):
        check_qlib_symbols(["--"])


def test_upper_case_suffix_is_read_and_unmatched_data_files_are_named(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    folder = _folder(tmp_path, years=(2020,))
    _year(2021).to_csv(folder / "2021.CSV", index=False)  # Windows exports: read, not dropped
    _year(2022).to_csv(folder / "2022.csv.gz", index=False)
    with caplog.at_level("WARNING"):
        panel = CSVSource(folder).load()
    assert panel.n_rows == len(_year(2020)) + len(_year(2021))
    assert "1 file(s) not read (they do not match data.source.glob='*.csv'): 2022.csv.gz" in caplog.text


def test_bar_frequency_per_series_and_mixes_refused(tmp_path: Path) -> None:
    from kronos.data.qlib_provider import bar_frequency, check_one_frequency

    daily = pd.bdate_range("2020-01-01", periods=300).to_numpy()
    weekly = pd.date_range("2020-01-03", periods=60, freq="W-FRI").to_numpy()
    hourly = pd.date_range("2020-01-01", periods=300, freq="h").to_numpy()
    gappy = np.delete(daily, np.arange(10, 40))  # a 6-week suspension keeps daily bars daily
    assert [bar_frequency(x) for x in (daily, weekly, hourly, gappy)] == ["day", "week", "60min", "day"]
    assert check_one_frequency(["A", "B"], [daily, gappy]) == "day"
    with pytest.raises(DataValidationError, match=r"mixes bar frequencies \(1 day series \(e.g. 'A'\); 1 week series"):
        check_one_frequency(["A", "W"], [daily, weekly])
    frame = lambda ts: pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=pd.DatetimeIndex(ts))
    with pytest.raises(DataValidationError, match="mixes bar frequencies"):
        build_provider({"A": frame(daily), "H": frame(hourly)}, tmp_path / "p", freq="60min")
