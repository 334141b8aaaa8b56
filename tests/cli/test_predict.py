"""kronos-predict: outputs written, future timestamps inferred, clear exit-2 errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.inference.frame import parse_quantiles, quantile_column
from kronos.inference.sessions import future_timestamps
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
        np.testing.assert_allclose(table[feature], q50, rtol=1e-9)  # the point forecast is the paths' median
    source = pd.read_csv(csv, parse_dates=["timestamps"])
    # Future stamps continue the file's 5-minute A-share sessions (bar times seen in it, weekdays only).
    seen_times = set(source["timestamps"].dt.strftime("%H:%M"))
    future = table["timestamps"]
    assert future.iloc[0] > source["timestamps"].iloc[-1] and future.is_monotonic_increasing
    assert set(future.dt.strftime("%H:%M")) <= seen_times and (future.dt.dayofweek < 5).all()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_cli_without_quantiles_writes_point_columns_only(fixtures_dir: Path, tmp_path: Path) -> None:
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


# ---------------------------------------------------------------- issue 11: one line and exit 2, never a traceback


def _good_csv(tmp_path: Path, rows: int = 80) -> Path:
    ts = pd.date_range("2024-01-01", periods=rows, freq="h")
    close = 100 + np.cumsum(np.sin(np.arange(rows)))
    path = tmp_path / "good.csv"
    pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close}).to_csv(path, index=False)
    return path


def _run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize(("extra", "message"), [
    (["--seed", str(2**70)], "--seed must be a whole number"),
    (["--T", "1e-300"], "--T must be between"),
    (["--max-context", "3"], "longer than --max-context 3"),
    (["--device", "tpu"], "device 'tpu'"),
    (["--top-p", "0"], "--top-p must be in"),
    (["--pred-len", "4096"], "lower --pred-len to 512"),
])
def test_cli_bad_settings_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              tiny_pair: tuple[Path, Path], extra: list[str], message: str) -> None:
    tokenizer, predictor = tiny_pair
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv",
                                str(_good_csv(tmp_path)), "--lookback", "40", "--pred-len", "4", *extra])
    assert rc == 2, err
    assert err.startswith("kronos-predict: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_swapped_pair_nul_path_and_out_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    csv = str(_good_csv(tmp_path))
    base = ["--csv", csv, "--lookback", "40", "--pred-len", "4"]
    rc, err = _run_cli(capsys, ["--model", str(tokenizer), "--tokenizer", str(predictor), *base])
    assert rc == 2 and "swap predictor and tokenizer" in err and err.count("\n") == 1
    rc, err = _run_cli(capsys, ["--model", str(predictor) + "\x00x", "--tokenizer", str(tokenizer), *base])
    assert rc == 2 and "NUL byte" in err
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer), *base,
                                "--out", str(tmp_path)])
    assert rc == 2 and "is a directory" in err
    assert (tmp_path / "good.csv").is_file()  # nothing the user had is touched


@pytest.mark.parametrize("flag", ["--out", "--plot"])
def test_cli_output_under_a_file_is_exit_2_before_the_model_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 flag: str) -> None:
    """Regression: --out data.csv/x.csv ran the forecast, then failed with exit 1 and '[Errno 17] File exists'."""
    csv = _good_csv(tmp_path)
    rc, err = _run_cli(capsys, ["--model", str(tmp_path / "no-model"), "--tokenizer", str(tmp_path / "no-tok"),
                                "--csv", str(csv), "--lookback", "40", "--pred-len", "4", flag, str(csv / "x.csv")])
    assert rc == 2 and f"{csv} is a file, not a directory" in err and err.count("\n") == 1


@pytest.mark.parametrize("flag", ["--out", "--plot"])
def test_cli_refuses_to_write_over_its_input_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 tiny_pair: tuple[Path, Path], flag: str) -> None:
    """Regression: --out/--plot naming the --csv file replaced the user's data with the forecast."""
    tokenizer, predictor = tiny_pair
    csv = _good_csv(tmp_path)
    before = csv.read_bytes()
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv", str(csv),
                                "--lookback", "40", "--pred-len", "4", flag, str(tmp_path / "." / csv.name)])
    assert rc == 2 and "is the input --csv itself" in err and err.count("\n") == 1
    assert csv.read_bytes() == before


@pytest.mark.parametrize(("content", "message"), [
    (b"timestamps,open,high,low,close,Close\n2024-01-01,1,2,0.5,1,1\n2024-01-02,1,2,0.5,1,1\n", "'Close'"),
    (b"timestamps,open,high,low,close\n2024-01-01 00:00+00:00,1,2,0.5,1\n2024-01-01 03:00+02:00,1,2,0.5,1\n"
     b"2024-01-01 04:00+01:00,1,2,0.5,1\n", None),
])
def test_cli_bad_csv_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_pair: tuple[Path, Path],
                            content: bytes, message: str | None) -> None:
    tokenizer, predictor = tiny_pair
    csv = tmp_path / "bad.csv"
    csv.write_bytes(content)
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv", str(csv),
                                "--lookback", "3", "--pred-len", "1", "--device", "cpu"])
    if message is None and rc == 0:
        return  # mixed offsets converted to UTC by the reader: also fine
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1
    assert message is None or message in err


def test_cli_intraday_future_follows_sessions_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          fixtures_dir: Path) -> None:
    csv = _head_csv(fixtures_dir, tmp_path, rows=600)  # 5-minute A-share bars, about 12 trading days
    out = tmp_path / "f.csv"
    rc, err = _run_cli(capsys, [*_model_args(fixtures_dir), "--csv", str(csv), "--lookback", "500", "--pred-len", "60",
                                "--top-k", "1", "--max-context", "512", "--out", str(out)])
    assert rc == 0, err
    stamps = pd.to_datetime(pd.read_csv(out)["timestamps"])
    clock = stamps.dt.strftime("%H:%M")
    assert not ((clock > "11:30") & (clock < "13:05")).any() and not (clock > "15:00").any()
    assert (stamps.dt.dayofweek < 5).all()
    assert "follow the data's sessions" in err


def test_cli_lookback_above_max_context_is_truncated_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv",
                                str(_good_csv(tmp_path)), "--lookback", "60", "--max-context", "32", "--pred-len", "2",
                                "--out", str(tmp_path / "o.csv")])
    assert rc == 0 and "the last 32 rows are used" in err


def test_cli_name_too_long_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       tiny_pair: tuple[Path, Path]) -> None:
    tokenizer, predictor = tiny_pair
    rc, err = _run_cli(capsys, ["--model", str(predictor), "--tokenizer", str(tokenizer),
                                "--csv", str(tmp_path / ("x" * 300 + ".csv"))])
    assert rc in (1, 2) and err.startswith("kronos-predict: error:") and err.count("\n") == 1


def test_cli_symbol_of_a_long_csv_is_not_blocked_by_another_symbols_nan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_pair: tuple[Path, Path]) -> None:
    """Regression: one suspension-day NaN in any symbol refused every --symbol of the file (the shared CSI300
    CSV could not be forecast at all); the asked series must still be refused when it has a NaN itself."""
    tokenizer, predictor = tiny_pair
    ts = pd.date_range("2024-01-01", periods=60, freq="D")
    close = 100 + np.cumsum(np.sin(np.arange(60)))
    parts = []
    for symbol in ("AAA", "BBB"):
        part = pd.DataFrame({"date": ts, "symbol": symbol, "open": close, "high": close + 1, "low": close - 1,
                             "close": close, "volume": 1000.0})
        parts.append(part)
    parts[1].loc[10, "volume"] = np.nan  # a suspension day of BBB
    csv = tmp_path / "long.csv"
    pd.concat(parts).sort_values(["date", "symbol"]).to_csv(csv, index=False)
    base = ["--model", str(predictor), "--tokenizer", str(tokenizer), "--csv", str(csv), "--lookback", "40",
            "--pred-len", "3", "--top-k", "1", "--out"]
    rc, err = _run_cli(capsys, [*base, str(tmp_path / "a.csv"), "--symbol", "AAA"])
    assert rc == 0, err
    assert len(pd.read_csv(tmp_path / "a.csv")) == 3
    rc, err = _run_cli(capsys, [*base, str(tmp_path / "b.csv"), "--symbol", "BBB"])
    assert rc == 2 and "symbol 'BBB' has 1 row(s) with a missing value (NaN)" in err and err.count("\n") == 1
    rc, err = _run_cli(capsys, [*base, str(tmp_path / "c.csv"), "--symbol", "CCC"])
    assert rc == 2 and "symbol 'CCC' is not in the data" in err
    assert not (tmp_path / "b.csv").exists() and not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize("flag", ["--out", "--plot"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_cli_never_replaces_a_pipe_or_device(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                                             kind: str) -> None:
    """Regression (hostile round): --out/--plot on a named pipe or /dev/null replaced it with a regular file."""
    import os
    import stat

    csv = _good_csv(tmp_path)
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    else:
        target = tmp_path / "null-link"
        target.symlink_to("/dev/null")  # through a symlink: the device itself is the target
    rc, err = _run_cli(capsys, ["--model", str(tmp_path / "no-model"), "--tokenizer", str(tmp_path / "no-tok"),
                                "--csv", str(csv), "--lookback", "40", "--pred-len", "4", flag, str(target)])
    assert rc == 2 and flag in err and "not a regular file" in err and err.count("\n") == 1
    mode = os.stat(target).st_mode
    assert stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_cli_out_and_plot_on_the_same_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      spelling: str) -> None:
    """Regression (hostile round): --out X --plot X overwrote the forecast with the picture."""
    csv = _good_csv(tmp_path)
    out = tmp_path / "f.csv"
    out.write_text("keep\n")
    plot = {"same": out, "dotted": tmp_path / "sub" / ".." / "f.csv", "symlink": tmp_path / "link.png"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        plot.symlink_to(out)
    rc, err = _run_cli(capsys, ["--model", str(tmp_path / "no-model"), "--tokenizer", str(tmp_path / "no-tok"),
                                "--csv", str(csv), "--lookback", "40", "--pred-len", "4", "--out", str(out),
                                "--plot", str(plot)])
    assert rc == 2 and "same file" in err and err.count("\n") == 1
    assert out.read_text() == "keep\n"


def test_cli_missing_symbol_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression (hostile round): a symbol column with a missing value ended in a traceback."""
    rows = ["timestamps,symbol,open,high,low,close"]
    rows += [f"2024-01-01 {h:02d}:00,{'A' if h % 2 else 'B'},1,2,0.5,1" for h in range(20)] + ["2024-01-02 00:00,,1,2,0.5,1"]
    csv = tmp_path / "long.csv"
    csv.write_text("\n".join(rows) + "\n")
    rc, err = _run_cli(capsys, ["--model", str(tmp_path / "no-model"), "--tokenizer", str(tmp_path / "no-tok"),
                                "--csv", str(csv), "--symbol", "A", "--lookback", "4", "--pred-len", "2"])
    assert rc == 2 and "symbol" in err and "missing" in err and err.count("\n") == 1


@pytest.mark.parametrize("freq", ["h", "D"])
def test_cli_future_past_the_pandas_limit_is_one_line_before_the_model(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str],
                                                                      freq: str) -> None:
    """Regression (hostile round): a history ending near 2262-04-11 gave an OutOfBoundsDatetime traceback."""
    ts = pd.date_range(end="2262-04-10 20:00", periods=80, freq=freq)
    close = 100 + np.arange(80.0)
    csv = tmp_path / "edge.csv"
    pd.DataFrame({"timestamps": ts, "open": close, "high": close + 1, "low": close - 1, "close": close}).to_csv(csv, index=False)
    rc, err = _run_cli(capsys, ["--model", str(tmp_path / "no-model"), "--tokenizer", str(tmp_path / "no-tok"),
                                "--csv", str(csv), "--lookback", "40", "--pred-len", "30", "--max-context", "64"])
    assert rc == 2 and "would pass 2262-04-11" in err and err.count("\n") == 1
