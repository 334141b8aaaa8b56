"""stage=backtest / stage=evaluate through the forecast store: reuse, kill -9 and resume, torchrun ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.lightning.conftest import SMALL_MARKET

STAGE = [*SMALL_MARKET, "data.lookback=24", "data.horizon=4", "logger=csv", "backtest.batch_size=8",
         "backtest.sampling.sample_count=2", "evaluate.batch_size=8"]
# Run-dependent fields of metrics.json: where and how the forecasts were obtained, and timings.
RUN_FIELDS = ("forecast_store", "name", "provider_uri", "weights", "notes")


def _cmd(tmp_path: Path, name: str, tiny_pair, *extra: str, launcher: list[str] | None = None) -> list[str]:
    tokenizer, predictor = tiny_pair
    return [*(launcher or [sys.executable]), "-m", "kronos.train", "stage=backtest", f"output_root={tmp_path}",
            f"name={name}", *STAGE, f"++weights.tokenizer={tokenizer}", f"++weights.predictor={predictor}", *extra]


def _env() -> dict[str, str]:
    # PYTHONHASHSEED: Qlib's simulation walks sets of instrument names, whose order (and so the last bits of a
    # sum) follows the string hash; fixed, two processes give bit-equal metrics.
    return os.environ | {"KRONOS_SHARD_WINDOWS": "16", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1",
                         "PYTHONHASHSEED": "0"}


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def _outputs(tmp_path: Path, name: str) -> tuple[pd.DataFrame, dict]:
    backtest = tmp_path / name / "backtest"
    metrics = json.loads((backtest / "metrics.json").read_text())
    return pd.read_csv(backtest / "signals.csv"), metrics


def _same_results(a: dict, b: dict) -> None:
    strip = lambda m: {k: v for k, v in m.items() if k not in RUN_FIELDS}  # noqa: E731
    assert json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


@pytest.mark.slow
def test_kill_9_mid_backtest_then_resume_computes_only_the_rest(tmp_path: Path, tiny_pair) -> None:
    _run(_cmd(tmp_path, "whole", tiny_pair))
    whole_signals, whole = _outputs(tmp_path, "whole")
    total = whole["forecast_store"]["computed"]
    assert whole["forecast_store"]["reused"] == 0 and total == whole["n_forecasts"]

    proc = subprocess.Popen(_cmd(tmp_path, "killed", tiny_pair), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    forecasts = tmp_path / "killed" / "forecasts"
    while time.time() < deadline and len(list(forecasts.glob("*/part-*.parquet"))) < 2:
        assert proc.poll() is None, "the backtest ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "backtest" / "metrics.json").exists()

    _run(_cmd(tmp_path, "killed", tiny_pair))
    resumed_signals, resumed = _outputs(tmp_path, "killed")
    store = resumed["forecast_store"]
    assert 0 < store["reused"] < total and store["computed"] == total - store["reused"]
    pd.testing.assert_frame_equal(resumed_signals, whole_signals)
    _same_results(resumed, whole)

    _run(_cmd(tmp_path, "killed", tiny_pair, "backtest.topk=2", "backtest.n_drop=1",
                        "backtest.signal=mean"))  # analysis only
    _, again = _outputs(tmp_path, "killed")
    assert again["forecast_store"]["computed"] == 0 and again["forecast_store"]["reused"] == total
    assert again["forecast_store"]["key"] == store["key"] and again["settings"]["topk"] == 2


@pytest.mark.slow
def test_two_torchrun_ranks_give_one_process_results(tmp_path: Path, tiny_pair) -> None:
    _run(_cmd(tmp_path, "one", tiny_pair))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"]
    _run(_cmd(tmp_path, "two", tiny_pair, "trainer=ddp_cpu", launcher=torchrun))
    one_signals, one = _outputs(tmp_path, "one")
    two_signals, two = _outputs(tmp_path, "two")
    shards = list((tmp_path / "two" / "forecasts").glob("*/part-*.parquet"))
    assert {p.name.split("-")[1] for p in shards} == {"r0000", "r0001"}  # each rank wrote its share
    pd.testing.assert_frame_equal(two_signals, one_signals)
    _same_results(two, one)
    assert two["forecast_store"]["computed"] == one["forecast_store"]["computed"] == one["n_forecasts"]


@pytest.mark.slow
def test_two_torchrun_ranks_evaluate_like_one_process(tmp_path: Path, tiny_pair) -> None:
    evaluate = ["stage=evaluate", "evaluate.stride=4", "evaluate.tasks=[return]"]
    _run([*_cmd(tmp_path, "one", tiny_pair), *evaluate])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29518"]
    _run([*_cmd(tmp_path, "two", tiny_pair, "trainer=ddp_cpu", launcher=torchrun), *evaluate])
    one, two = (json.loads((tmp_path / n / "evaluate" / "metrics.json").read_text()) for n in ("one", "two"))
    assert [r["computed"] for r in one["forecast_store"]] == [r["computed"] for r in two["forecast_store"]]
    assert json.dumps(_results(one), sort_keys=True) == json.dumps(_results(two), sort_keys=True)


def _results(value: object) -> object:
    """Evaluate metrics without what depends on the run (the store's record, weights' locations, timings and rates)."""
    skip = ("forecast_store", "weights", "model_weights")
    if isinstance(value, dict):
        return {k: _results(v) for k, v in value.items() if k not in skip and "second" not in k}
    if isinstance(value, list):
        return [_results(v) for v in value]
    return value
