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


# --- values, timestamps and columns that used to pass validation (issue 10) ---------------------------------


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.assign(Close=d["Close"].where(d.index != 4, np.inf)),
         r"column 'close' has an infinite value \(inf\) at row 4 \(line 6"),
        (lambda d: d.assign(Vol=d["Vol"].where(d.index != 2, -np.inf)),
         r"column 'volume' has an infinite value \(-inf\) at row 2"),
        (lambda d: d.assign(Low=d["Low"].where(d.index != 3, 0.0)),
         r"column 'low' has a non-positive price \(0\) at row 3"),
        (lambda d: d.assign(Open=d["Open"].where(d.index != 8, -1.5)),
         r"column 'open' has a non-positive price \(-1.5\) at row 8"),
        (lambda d: d.assign(High=d["High"].where(d.index != 6, d["Low"] - 0.5)),
         r"high [\d.]+ is below low [\d.]+ at row 6"),
        (lambda d: d.assign(Vol=d["Vol"].where(d.index != 1, -5.0)),
         r"column 'volume' has a negative value \(-5\) at row 1"),
    ],
    ids=["inf-close", "-inf-volume", "zero-low", "negative-open", "high-below-low", "negative-volume"],
)
def test_bad_values_are_named(tmp_path: Path, mutate, pattern: str) -> None:
    path = _write(tmp_path, mutate(_frame()), "bad.csv")
    with pytest.raises(DataValidationError, match=pattern) as err:
        read_ohlcv_csv(path)
    assert str(path) in str(err.value) and CLEAN_HINT in str(err.value)


def test_inf_price_stops_before_training(tmp_path: Path) -> None:
    """Regression: inf in a price column used to reach training and surface as 'loss became nan'."""
    from kronos.data.datamodule import KronosDataModule

    df = _frame(60)
    df.loc[33, "High"] = np.inf
    path = _write(tmp_path, df, "inf.csv")
    with pytest.raises(DataValidationError, match=r"inf\.csv: column 'high' has an infinite value \(inf\) at row 33"):
        KronosDataModule(CSVSource(path), lookback=20, horizon=5, batch_size=4).panel


def test_clean_csv_repairs_what_validation_refuses(tmp_path: Path) -> None:
    """The repair command printed for inf, non-positive prices and high < low produces a valid file."""
    from data_pipelines.clean_csv import clean_csv

    df = _frame()
    df.loc[4, "Close"], df.loc[7, "Low"], df.loc[9, "High"] = np.inf, 0.0, 1.0
    out = tmp_path / "clean.csv"
    report = clean_csv(_write(tmp_path, df, "bad.csv"), out, verbose=False)
    assert report["infinite_cells"] == 1 and report["nan_rows_dropped"] == 1
    assert report["invalid_price_rows_dropped"] == 2
    assert len(read_ohlcv_csv(out)) == 27


@pytest.mark.parametrize("value, unit", [(1_704_067_200, "s"), (1_704_067_200_000, "ms")])
def test_epoch_number_timestamps_are_refused_with_the_conversion(tmp_path: Path, value: int, unit: str) -> None:
    df = _frame().drop(columns="Date")
    df.insert(0, "timestamp", value + np.arange(len(df)) * (86_400 if unit == "s" else 86_400_000))
    with pytest.raises(DataValidationError, match=rf"column 'timestamp' holds numbers, not dates .* at row 0") as err:
        read_ohlcv_csv(_write(tmp_path, df))
    assert f"pd.to_datetime(df['timestamp'], unit='{unit}')" in str(err.value)


def test_yyyymmdd_integers_are_dates(tmp_path: Path) -> None:
    df = _frame().drop(columns="Date")
    df.insert(0, "trade_date", pd.date_range("2024-01-01", periods=len(df)).strftime("%Y%m%d").astype(int))
    got = read_ohlcv_csv(_write(tmp_path, df))
    assert got["timestamps"].iloc[0] == pd.Timestamp("2024-01-01") and got["timestamps"].iloc[-1] == pd.Timestamp("2024-01-30")


def test_mixed_utc_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    df = _frame(4)
    df["Date"] = ["2024-03-30 10:00+01:00", "2024-03-31 10:00+02:00", "2024-04-01 09:00+00:00", "2024-04-02 17:00+08:00"]
    got = read_ohlcv_csv(_write(tmp_path, df))
    assert got["timestamps"].tolist() == [pd.Timestamp(t) for t in
                                          ("2024-03-30 09:00", "2024-03-31 08:00", "2024-04-01 09:00", "2024-04-02 09:00")]
    assert got["timestamps"].dt.tz is None


def test_offsets_mixed_with_naive_timestamps_are_refused(tmp_path: Path) -> None:
    df = _frame(4)
    df["Date"] = ["2024-03-30 10:00", "2024-03-31 10:00", "2024-04-01 09:00+02:00", "2024-04-02 17:00"]
    with pytest.raises(DataValidationError, match=r"column 'date' mixes timestamps with and without a UTC offset "
                                                  r"\('2024-04-01 09:00\+02:00' with one at row 2"):
        read_ohlcv_csv(_write(tmp_path, df))


def test_columns_equal_up_to_case_are_one_error(tmp_path: Path) -> None:
    df = _frame().assign(close=1.0)
    with pytest.raises(DataValidationError, match=r"columns 'Close' and 'close' are the same column \('close'\)"):
        read_ohlcv_csv(_write(tmp_path, df))
    with pytest.raises(DataValidationError, match=r"same column"):
        read_ohlcv_csv(io.StringIO(_frame().assign(close=1.0).to_csv(index=False)), name="upload.csv")


def test_volume_per_asset_columns_are_recognised(tmp_path: Path) -> None:
    """CryptoDataDownload layout: `Volume BTC` is the base volume, `Volume USDT` the quote turnover."""
    df = _frame().rename(columns={"Vol": "Volume BTC"}).assign(**{"Volume USDT": lambda d: d["Volume BTC"] * 30.0})
    df.insert(1, "symbol", "BTC/USDT")
    got = read_ohlcv_csv(_write(tmp_path, df))
    np.testing.assert_array_equal(got["volume"], df["Volume BTC"])
    np.testing.assert_array_equal(got["amount"], df["Volume USDT"])
    # without a symbol column the file name tells the pair; columns in the other order
    df2 = df.drop(columns="symbol")[["Date", "Open", "High", "Low", "Close", "Volume USDT", "Volume BTC"]]
    got = read_ohlcv_csv(_write(tmp_path, df2, "Binance_BTCUSDT_1h.csv"))
    np.testing.assert_array_equal(got["volume"], df["Volume BTC"])
    np.testing.assert_array_equal(got["amount"], df["Volume USDT"])
    # a quote volume alone is the amount; the volume follows from it instead of being zero
    got = read_ohlcv_csv(_write(tmp_path, df2.drop(columns="Volume BTC"), "x.csv"))
    np.testing.assert_allclose(got["amount"], df["Volume USDT"])
    np.testing.assert_allclose(got["volume"], df["Volume USDT"] / got[["open", "high", "low", "close"]].mean(axis=1))


def test_repair_hint_repeats_the_column_options(tmp_path: Path) -> None:
    long = pd.concat([_frame().assign(stock="A"), _frame().assign(stock="B")]).rename(columns={"Date": "day"})
    long.loc[long.index == 3, "Close"] = np.nan
    path = _write(tmp_path, long.reset_index(drop=True), "long.csv")
    with pytest.raises(DataValidationError) as err:
        read_ohlcv_csv(path, time_column="day", symbol_column="stock")
    assert f"clean_csv {path} --out <cleaned.csv> --time-column day --symbol-column stock" in str(err.value)


def test_sources_iter_series_in_symbol_order(tmp_path: Path) -> None:
    long = pd.concat([_frame().assign(symbol="ZZZ"), _frame(20).assign(symbol="AAA")])
    source = CSVSource(_write(tmp_path, long, "long.csv"))
    items = list(source.iter_series())
    assert [s for s, *_ in items] == ["AAA", "ZZZ"]
    sym, ts, values, member = items[0]
    assert ts.dtype == np.dtype("datetime64[ns]") and values.dtype == np.float32 and values.shape == (20, 6)
    assert member is None
    np.testing.assert_array_equal(values, source.load().values[1])


def test_all_rows_dropped_as_nan_is_the_too_few_rows_message(tmp_path: Path) -> None:
    df = _frame(5).assign(trade_date=lambda d: pd.to_datetime(d["Date"]).dt.strftime("%Y%m%d").astype(int),
                          Vol=np.nan).drop(columns="Date")
    with pytest.raises(DataValidationError, match=r"has 0 rows, fewer than the 1"):
        read_ohlcv_csv(_write(tmp_path, df), on_nan="drop")


CRYPTO_DATA_DOWNLOAD = """https://www.CryptoDataDownload.com
unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount
1704074400000,2024-01-01 02:00:00,BTC/USDT,42300.5,42400,42200,42350,12.5,529375,900
1704070800000,2024-01-01 01:00:00,BTC/USDT,42200,42350,42100,42300.5,10,423005,800
1704067200000,2024-01-01 00:00:00,BTC/USDT,42100,42250,42000,42200,8,337600,700
1704063600000,2023-12-31 23:00:00,BTC/USDT,42000,42150,41900,42100,"1,000",,600
"""


def test_crypto_data_download_export_reads_after_clean_csv(tmp_path: Path) -> None:
    """The banner line is skipped, the per-asset volumes recognised, the newest-first order repaired."""
    from data_pipelines.clean_csv import clean_csv

    path = tmp_path / "Binance_BTCUSDT_1h.csv"
    path.write_text(CRYPTO_DATA_DOWNLOAD)
    with pytest.raises(DataValidationError, match=r"column 'volume btc' holds non-numeric text '1,000' at row 3 "
                                                  r"\(line 5 of the file\).*--symbol-column symbol"):
        read_ohlcv_csv(path)
    report = clean_csv(path, tmp_path / "btc.csv", verbose=False)
    assert report["text_cells_coerced"] == 1 and report["nan_rows_dropped"] == 1  # "1,000"; the missing USDT volume
    got = read_ohlcv_csv(tmp_path / "btc.csv")
    assert got["symbol"].unique().tolist() == ["BTC/USDT"]
    assert got["volume"].tolist() == [8.0, 10.0, 12.5] and got["amount"].tolist() == [337600.0, 423005.0, 529375.0]
    with pytest.raises(DataValidationError, match=r"upload\.csv: column 'volume btc' holds non-numeric text"):
        read_ohlcv_csv(io.BytesIO(CRYPTO_DATA_DOWNLOAD.encode()), name="upload.csv")  # a web upload: same handling


def test_plain_amount_without_volume_keeps_the_reference_rule() -> None:
    csv = "timestamps,open,high,low,close,amount\n2024-01-01,1,2,0.5,1.5,300\n2024-01-02,1.5,2,1,1.8,200\n"
    df = read_ohlcv_csv(io.StringIO(csv), name="upload.csv")
    assert (df["volume"] == 0).all() and (df["amount"] == 0).all()  # KRONOS_SPEC: missing volume -> both 0


def test_day_first_dates_are_read_day_first_throughout(tmp_path: Path) -> None:
    """QA: 'DD.MM.YYYY' was read value by value, month first where possible: 02.01.2020 became February 1
    while 13.01.2020 stayed January 13, so the file was refused as unsorted (and clean_csv 'sorted' it)."""
    df = _frame(40, start="2020-01-02")
    days = pd.date_range("2020-01-02", periods=40, freq="D")
    for fmt in ("%d.%m.%Y", "%d/%m/%Y %H:%M"):
        df["Date"] = days.strftime(fmt)
        out = read_ohlcv_csv(_write(tmp_path, df))
        assert (out["timestamps"].to_numpy() == days.to_numpy()).all(), fmt
    df["Date"] = days.strftime("%m/%d/%Y")  # month first (US) is still read month first
    assert (read_ohlcv_csv(_write(tmp_path, df))["timestamps"].to_numpy() == days.to_numpy()).all()


def test_semicolon_separated_file_is_named_as_such(tmp_path: Path) -> None:
    """QA: a ';'-separated export was refused with 'no timestamp column ... Rename it or pass time_column=...',
    advice that cannot work (clean_csv, the suggested repair, refused it the same way)."""
    from data_pipelines.clean_csv import clean_csv

    path = tmp_path / "eu.csv"
    _frame().to_csv(path, index=False, sep=";")
    for read in (lambda: read_ohlcv_csv(path), lambda: clean_csv(path, tmp_path / "out.csv", verbose=False)):
        with pytest.raises(DataValidationError, match=r"eu\.csv: read as a single column .*looks ';'-separated"
                                                      r".*sep=';'"):
            read()
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("policy", ["ffill", "fill", "Drop"])
def test_unknown_nan_policy_is_refused(tmp_path: Path, policy: str) -> None:
    """QA: data.source.on_nan=ffill (clean_csv's word) was accepted and silently DROPPED the NaN rows."""
    df = _frame()
    df.loc[5, "Close"] = np.nan
    with pytest.raises(DataValidationError, match=rf"on_nan='{policy}' \(data.source.on_nan\): expected 'raise' or "
                                                  r"'drop'.*--nan ffill"):
        CSVSource(_write(tmp_path, df), on_nan=policy).load()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Shanghai"])
def test_daily_bars_at_local_midnight_keep_their_date(tmp_path: Path, zone: str) -> None:
    """QA: yfinance-style daily stamps ('2020-01-02 00:00:00-05:00') became 05:00/04:00 UTC (csv_to_qlib then
    refused them as 1440-minute bars) and '+08:00' midnights moved to the previous day."""
    from data_pipelines.clean_csv import clean_csv

    days = pd.bdate_range("2020-02-20", periods=40)  # spans the US daylight-saving change (mixed offsets)
    df = _frame(len(days))
    df["Date"] = days.tz_localize(zone).astype(str)
    path = _write(tmp_path, df)
    assert (read_ohlcv_csv(path)["timestamps"].to_numpy() == days.to_numpy()).all()
    clean_csv(path, tmp_path / "clean.csv", verbose=False)
    assert (read_ohlcv_csv(tmp_path / "clean.csv")["timestamps"].to_numpy() == days.to_numpy()).all()
    # Intraday bars with offsets are still converted to UTC.
    df["Date"] = (days + pd.Timedelta(hours=10)).tz_localize(zone).astype(str)
    expected = (days + pd.Timedelta(hours=10)).tz_localize(zone).tz_convert("UTC").tz_localize(None)
    assert (read_ohlcv_csv(_write(tmp_path, df))["timestamps"].to_numpy() == expected.to_numpy()).all()
