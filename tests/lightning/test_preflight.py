"""Issue 27: what the backtest/evaluate stages cannot do with the data is refused before any training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos.data.errors import DataValidationError
from kronos.preflight import PreflightError
from kronos.train import train
from tests.lightning.conftest import FAST, FAST_RUN, compose_config


def _csv_market(folder: Path, *, volume: bool = True, hourly: tuple[str, ...] = (),
                names: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        n = 160
        stamps = (pd.date_range("2024-01-01", periods=n, freq="h") if name in hourly
                  else pd.bdate_range("2020-01-01", periods=n))
        close = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n))) + k
        df = pd.DataFrame({"timestamps": stamps, "open": close, "high": close * 1.01, "low": close * 0.99,
                           "close": close})
        if volume:
            df["volume"] = rng.uniform(1e3, 2e3, n)
        df.to_csv(folder / f"{name}.csv", index=False)
    return folder


def _cfg(tmp_path: Path, *extra: str, data: Path | None = None):
    source = FAST if data is None else ["data=csv", f"data.source.path={data}", *FAST_RUN]
    return compose_config([*source, f"output_root={tmp_path}", "name=t", "stage=all", "logger=csv", *extra])


def _refused(tmp_path: Path, message: str, *extra: str, data: Path | None = None) -> None:
    with pytest.raises(DataValidationError, match=message):  # PreflightError or the data's own check
        train(_cfg(tmp_path, *extra, data=data))
    assert not (tmp_path / "t" / "checkpoints").exists() and not (tmp_path / "t" / "tokenizer").exists()


def test_horizon_one_with_the_backtest_is_refused_before_training(tmp_path: Path) -> None:
    _refused(tmp_path, r"data.horizon=1: the backtest trades .* set data.horizon=2", "data.horizon=1")


@pytest.mark.parametrize("start, end, message", [
    ("2020-08-01", "2020-07-01", r"backtest.start=2020-08-01 is after backtest.end=2020-07-01: swap them"),
    ("2031-01-01", None, r"backtest.start=2031-01-01 is after the test split \(the test split's decision dates run"),
    (None, "2000-01-01", r"backtest.end=2000-01-01 is before the test split"),
    ("2020-01-02", None, r"backtest.start=2020-01-02 is before the test split .*never traded"),
    ("2020-08-05", "2020-08-05", r"the backtest keeps 1 decision date\(s\) .* a portfolio needs at least 2"),
])
def test_backtest_dates_are_checked_before_training(tmp_path: Path, start, end, message: str) -> None:
    extra = [f"backtest.start={start}" if start else "backtest.start=null",
             f"backtest.end={end}" if end else "backtest.end=null"]
    _refused(tmp_path, message, *extra)


def test_symbols_equal_up_to_case_are_named_before_training(tmp_path: Path) -> None:
    data = _csv_market(tmp_path / "csv", names=("AAA", "aaa", "BBB", "CCC"))
    _refused(tmp_path, r"symbols 'AAA' and 'aaa' are the same instrument", data=data)


def test_mixed_hourly_and_daily_series_are_refused(tmp_path: Path) -> None:
    data = _csv_market(tmp_path / "csv", hourly=("CCC", "DDD"))
    _refused(tmp_path, r"mixes bar frequencies \(2 day series \(e.g. 'AAA'\); 2 60min series \(e.g. 'CCC'\)\)",
             data=data)


def test_volume_cap_without_volume_is_refused(tmp_path: Path) -> None:
    data = _csv_market(tmp_path / "csv", volume=False)
    _refused(tmp_path, r"has no volume .*backtest.max_participation=0.1 .* would never trade",
             "backtest.max_participation=0.1", data=data)


@pytest.mark.parametrize("tasks, message", [
    ("[]", r"evaluate.tasks=\[\] runs no task"),
    ("[generation]", r"evaluate.tasks: generation cannot run on this data \(needs raw candles, a horizon of 3"),
])
def test_evaluate_tasks_that_cannot_run_are_refused(tmp_path: Path, tasks: str, message: str) -> None:
    _refused(tmp_path, message, f"evaluate.tasks={tasks}", "data.horizon=2")


def test_weights_trained_on_shorter_windows_are_refused(tmp_path: Path, tiny_pair) -> None:
    tokenizer, predictor = tiny_pair
    short = tmp_path / "short_predictor"
    short.mkdir()
    for f in predictor.iterdir():
        (short / f.name).write_bytes(f.read_bytes())
    (short / "training_info.json").write_text(json.dumps({"config": {"data": {"lookback": 10, "horizon": 5}}}))
    with pytest.raises(PreflightError, match=r"backtest: the predictor .* was trained on windows of 15 rows .* "
                                             r"gives it 24 rows of history .* set backtest.max_context=15"):
        train(_cfg(tmp_path, "stage=backtest", f"++weights.tokenizer={tokenizer}", f"++weights.predictor={short}"))


def test_benchmark_csv_that_does_not_cover_the_test_split_is_refused(tmp_path: Path) -> None:
    bench = tmp_path / "index.csv"
    pd.DataFrame({"date": pd.bdate_range("2020-01-01", "2020-03-31"), "close": 100.0}).to_csv(bench, index=False)
    _refused(tmp_path, r"backtest.benchmark=.*index.csv: the benchmark covers 2020-01-01 .. 2020-03-31 but the "
             r"backtest trades 2020-06-29 .. 2020-08-05", f"backtest.benchmark={bench}")
