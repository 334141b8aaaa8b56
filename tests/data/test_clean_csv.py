"""clean_csv repairs a messy file into one read_ohlcv_csv accepts, and reports what it changed."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_pipelines.clean_csv import clean_csv, main
from kronos.data.csv_source import CSVSource, read_ohlcv_csv
from kronos.data.errors import DataValidationError

REPO = Path(__file__).resolve().parents[2]

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


def _long_market(n_symbols: int = 40, n_days: int = 60) -> pd.DataFrame:
    """A long multi-symbol file whose symbol column ('name') is not one of the auto-detected aliases."""
    days = pd.date_range("2023-01-02", periods=n_days, freq="B").strftime("%Y-%m-%d")
    frames = []
    for k in range(n_symbols):
        close = 10.0 + k + np.linspace(0, 1, n_days)
        frames.append(pd.DataFrame({"date": days, "name": f"S{k:03d}", "open": close, "high": close + 0.5,
                                    "low": close - 0.5, "close": close, "volume": 1000.0 + k}))
    return pd.concat(frames).sort_values(["date", "name"], kind="stable").reset_index(drop=True)


def test_printed_repair_command_keeps_a_long_file(tmp_path: Path) -> None:
    """Regression (issue 10): the hint's command, run as printed, kept 1,259 of 619,040 rows."""
    df = _long_market()
    df.loc[[17, 555, 1800], "close"] = np.nan
    path = tmp_path / "market.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as err:
        CSVSource(path, symbol_column="name").load()
    command = str(err.value).split("Repair it with: ", 1)[1].strip()
    cleaned = tmp_path / "cleaned.csv"
    argv = shlex.split(command.replace("<cleaned.csv>", shlex.quote(str(cleaned))))
    assert argv[:3] == ["python", "-m", "data_pipelines.clean_csv"]
    proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    panel = CSVSource(cleaned, symbol_column="name").load()
    assert len(panel.instruments) == 40 and panel.n_rows == len(df) - 3


def test_mass_drop_is_refused_naming_the_symbol_column(tmp_path: Path) -> None:
    df = _long_market(n_symbols=5, n_days=30)
    path = tmp_path / "market.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "out.csv"
    with pytest.raises(DataValidationError, match=r"would drop 120 of 150 rows \(80.0%\).* Column 'name' looks like a "
                                                  r"symbol column \(5 distinct values.*--symbol-column name.*"
                                                  r"--allow-mass-drop"):
        clean_csv(path, out, verbose=False)
    assert not out.exists()
    proc = subprocess.run([sys.executable, "-m", "data_pipelines.clean_csv", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--symbol-column name" in proc.stderr
    assert main([str(path), "--out", str(out), "--symbol-column", "name"])["rows_out"] == 150
    assert main([str(path), "--out", str(out), "--allow-mass-drop"])["rows_out"] == 30


def test_in_place_writes_through_a_symlink(messy: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(messy)
    clean_csv(link, in_place=True, verbose=False)
    assert link.is_symlink() and link.resolve() == messy.resolve()
    assert read_ohlcv_csv(messy)["symbol"].nunique() == 2  # the real file was cleaned


def test_in_place_keeps_the_mode_and_new_files_follow_the_umask(messy: Path, tmp_path: Path) -> None:
    os.chmod(messy, 0o640)
    clean_csv(messy, in_place=True, verbose=False)
    assert stat.S_IMODE(messy.stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        out = tmp_path / "new" / "clean.csv"
        clean_csv(messy, out, verbose=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # 0666 & ~0027; mkstemp alone gave 0600


@pytest.mark.parametrize("module", ["clean_csv", "csv_to_qlib", "download_qlib"])
def test_cli_help(module: str, capsys: pytest.CaptureFixture) -> None:
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"data_pipelines.{module}").main(["--help"])
    assert exit_.value.code == 0 and f"python -m data_pipelines.{module}" in capsys.readouterr().out


def test_clean_csv_keeps_day_first_dates_in_order(tmp_path: Path) -> None:
    """QA: a day-first file was parsed value by value (02.01 -> February 1, 13.01 -> January 13) and
    clean_csv 'reordered' 500+ rows of a correctly sorted file into a scrambled series."""
    days = pd.date_range("2020-01-02", periods=60, freq="B")
    close = np.linspace(10, 20, len(days))
    raw = pd.DataFrame({"Date": days.strftime("%d.%m.%Y"), "Open": close, "High": close + 1, "Low": close - 1,
                        "Close": close, "Volume": 100.0})
    raw.to_csv(tmp_path / "eu.csv", index=False)
    report = clean_csv(tmp_path / "eu.csv", tmp_path / "out.csv", verbose=False)
    assert report["rows_reordered"] == 0 and report["rows_out"] == len(days)
    out = read_ohlcv_csv(tmp_path / "out.csv")
    assert (out["timestamps"].to_numpy() == days.to_numpy()).all()
    np.testing.assert_allclose(out["close"], close)


def _ohlcv(rows: int, volume: str | None = "100", close: str | None = None) -> str:
    lines = ["timestamps,open,high,low,close,volume"]
    for i in range(rows):
        c = close if close is not None else f"{10 + i % 3}"
        lines.append(f"2024-01-{1 + i:02d},10,12,9,{c},{volume if volume is not None else ''}")
    return "\n".join(lines) + "\n"


def test_an_empty_optional_column_is_dropped_not_every_row(tmp_path: Path) -> None:
    """Regression (hostile round): an empty volume column made --in-place leave only the header."""
    path = tmp_path / "novol.csv"
    text = _ohlcv(20, volume=None)
    path.write_text(text)
    report = clean_csv(path, in_place=True, verbose=False)
    assert report["rows_out"] == 20 and report["empty_columns_dropped"] == ["volume"]
    assert len(read_ohlcv_csv(path)) == 20


@pytest.mark.parametrize("in_place", [True, False])
def test_dropping_every_row_is_refused_and_nothing_written(tmp_path: Path, in_place: bool) -> None:
    """Regression (hostile round): every row invalid (close 0) exited 0 and wrote a header-only file."""
    path = tmp_path / "bad.csv"
    text = _ohlcv(20, close="0")
    path.write_text(text)
    out = tmp_path / "out.csv"
    with pytest.raises(DataValidationError, match="no rows of 20.*nothing was written"):
        clean_csv(path, None if in_place else out, in_place=in_place, verbose=False, allow_mass_drop=True)
    assert path.read_text() == text and not out.exists()


def test_dropping_most_rows_needs_allow_mass_drop(tmp_path: Path) -> None:
    path = tmp_path / "most.csv"
    lines = _ohlcv(30).splitlines()
    def blank_close(line: str) -> str:
        cells = line.split(",")
        cells[4] = ""
        return ",".join(cells)

    lines = lines[:1] + [blank_close(ln) if i % 4 else ln for i, ln in enumerate(lines[1:])]
    path.write_text("\n".join(lines) + "\n")
    before = path.read_text()
    with pytest.raises(DataValidationError, match=r"drop \d+ of 30 rows.*--allow-mass-drop"):
        clean_csv(path, in_place=True, verbose=False)
    assert path.read_text() == before
    assert clean_csv(path, in_place=True, verbose=False, allow_mass_drop=True)["rows_out"] == 8


def test_cli_refusals_are_one_line_exit_2(tmp_path: Path) -> None:
    """Every row dropped, a named pipe as --out, an unreadable file: exit 2, one line, nothing written."""
    bad = tmp_path / "bad.csv"
    bad.write_text(_ohlcv(5, close="-1"))
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 50)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in ([str(bad), "--in-place"], [str(bad.with_name("ok.csv")), "--out", str(pipe)], [str(binary), "--out",
                 str(tmp_path / "o.csv")]):
        if args[0].endswith("ok.csv"):
            Path(args[0]).write_text(_ohlcv(5))
        proc = subprocess.run([sys.executable, "-m", "data_pipelines.clean_csv", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and not (tmp_path / "o.csv").exists()
