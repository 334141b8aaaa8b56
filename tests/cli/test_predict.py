"""kronos-predict: outputs written, future timestamps inferred, clear exit-2 errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.inference.frame import future_timestamps, parse_quantiles, quantile_column
from kronos.cli.predict import main
from kronos.inference.validation import ForecastInputError


def _head_csv(fixtures_dir: Path, tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "input_head.csv"
    lines = (fixtures_dir / "input.csv").read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: rows + 1]))
    return path


def _model_args(fixtures_dir: Path) -> list[str]:
    return ["--model", str(fixtures_dir / "predictor"), "--tokenizer", str(fixtures_dir / "tokenizer"), "--device", "cpu"]


def test_cli_writes_csv_png_and_quantile_columns(fixtures_dir: Path, tmp_path: Path) -> None:
    csv = _head_csv(fixtures_dir, tmp_path, rows=260)
    out, png = tmp_path / "out" / "forecast.csv", tmp_path / "out" / "forecast.png"
    rc = main([*_model_args(fixtures_dir), "--csv", str(csv), "--lookback", "200", "--pred-len", "10",
               "--sample-count", "4", "--max-context", "256", "--quantiles", "0.1,0.5,0.9", "--seed", "0",
               "--out", str(out), "--plot", str(png)])
    assert rc == 0
    table = pd.read_csv(out, parse_dates=["timestamps"])
    assert len(table) == 10
    for feature in ("open", "close", "volume"):
        q10, q50, q90 = (table[quantile_column(feature, q)] for q in (0.1, 0.5, 0.9))
        assert np.all(q10 <= q50) and np.all(q50 <= q90)
    source = pd.read_csv(csv, parse_dates=["timestamps"])
    step = source["timestamps"].iloc[-200:].diff().median()
    expected = [source["timestamps"].iloc[-1] + step * (k + 1) for k in range(10)]
    assert list(table["timestamps"]) == expected
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_cli_without_quantiles_writes_mean_columns_only(fixtures_dir: Path, tmp_path: Path) -> None:
    csv = _head_csv(fixtures_dir, tmp_path, rows=120)
    out = tmp_path / "f.csv"
    assert main([*_model_args(fixtures_dir), "--csv", str(csv), "--lookback", "100", "--pred-len", "3",
                 "--top-k", "1", "--out", str(out)]) == 0
    assert list(pd.read_csv(out).columns) == ["timestamps", "open", "high", "low", "close", "volume", "amount"]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("timestamps,open,high,low\n2024-01-01,1,2,0.5\n", [], "close"),
        ("timestamps,open,high,low,close\n2024-01-02,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n", [], "unsorted"),
        ("timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1\n2024-01-02,1,2,0.5,1\n", [], "lookback"),
        ("timestamps,open,high,low,close\n2024-01-01,1,2,0.5,1\n", ["--quantiles", "0.5,1.5"], "quantiles"),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, extra: list[str], message: str
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    rc = main(["--model", str(tmp_path / "m"), "--tokenizer", str(tmp_path / "t"), "--csv", str(csv),
               "--lookback", "10", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("kronos-predict: error:") and message in err
    assert "Traceback" not in err


def test_cli_missing_checkpoint_exits_2(fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _head_csv(fixtures_dir, tmp_path, rows=50)
    rc = main(["--model", str(tmp_path / "no_model"), "--tokenizer", str(fixtures_dir / "tokenizer"),
               "--csv", str(csv), "--lookback", "40", "--pred-len", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "no_model" in err and "Traceback" not in err


def test_future_timestamps_keep_known_rows_then_step_by_median() -> None:
    history = pd.Series(pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:05", "2024-01-01 09:10", "2024-01-01 13:00"]))
    known = pd.Series(pd.to_datetime(["2024-01-01 13:05"]))
    got = future_timestamps(history, 3, known=known)
    assert list(got) == list(pd.to_datetime(["2024-01-01 13:05", "2024-01-01 13:10", "2024-01-01 13:15"]))


def test_parse_quantiles() -> None:
    assert parse_quantiles("0.1, 0.5,0.9") == (0.1, 0.5, 0.9)
    for bad in ("0", "0.2,1", "a,b", ""):
        with pytest.raises(ForecastInputError):
            parse_quantiles(bad)
