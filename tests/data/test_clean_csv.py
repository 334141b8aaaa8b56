"""clean_csv repairs a messy file into one read_ohlcv_csv accepts, and reports what it changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipelines.clean_csv import clean_csv, main
from kronos.data.csv_source import read_ohlcv_csv
from kronos.data.errors import DataValidationError

MESSY = """Date,Symbol,Open,High,Low,Close,Volume
2024-01-03,A,10,11,9,10.5,"1,200"
2024-01-01,A,10,11,9,10.2,1000
2024-01-02,A,10,11,9,,1100
2024-01-02,B,5,6,4,5.5,300
2024-01-01,B,5,6,4,5.2,200
2024-01-01,B,5,6,4,5.3,210
not a date,B,5,6,4,5.1,100
2024-01-03,B,5,6,4, 5.4 ,400
"""


@pytest.fixture()
def messy(tmp_path: Path) -> Path:
    path = tmp_path / "messy.csv"
    path.write_text(MESSY)
    return path


def test_clean_csv_drop_repairs_and_reports(messy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DataValidationError):
        read_ohlcv_csv(messy)
    out = tmp_path / "clean.csv"
    report = clean_csv(messy, out, nan="drop")
    assert report["rows_in"] == 8 and report["rows_out"] == 5
    assert report["text_cells_coerced"] == 1  # "1,200"
    assert report["bad_timestamps_dropped"] == 1
    assert report["duplicates_removed"] == 1
    assert report["nan_rows_dropped"] == 1
    assert report["rows_reordered"] > 0
    assert '"rows_out": 5' in capsys.readouterr().out
    df = read_ohlcv_csv(out)
    assert df.groupby("symbol").size().to_dict() == {"A": 2, "B": 3}
    b = df[df.symbol == "B"]
    assert b["close"].tolist() == [5.3, 5.5, 5.4]  # last duplicate kept, " 5.4 " coerced
    assert df[df.symbol == "A"]["volume"].tolist() == [1000.0, 1200.0]
    assert messy.read_text() == MESSY


def test_clean_csv_ffill_and_cli(messy: Path, tmp_path: Path) -> None:
    out = tmp_path / "ffill.csv"
    report = main([str(messy), "--out", str(out), "--nan", "ffill"])
    assert report["nan_cells_filled"] == 1 and report["nan_rows_dropped"] == 0
    a = read_ohlcv_csv(out).query("symbol == 'A'")
    assert a["close"].tolist() == [10.2, 10.2, 10.5]


def test_clean_csv_never_overwrites_input_without_in_place(messy: Path) -> None:
    with pytest.raises(DataValidationError, match="--in-place"):
        clean_csv(messy, messy)
    with pytest.raises(DataValidationError, match="--out"):
        clean_csv(messy)
    clean_csv(messy, in_place=True, verbose=False)
    assert read_ohlcv_csv(messy)["symbol"].nunique() == 2
