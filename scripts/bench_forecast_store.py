"""The forecast store benchmark (``python scripts/bench_backtest.py --store``); prints one JSON object.

On the main job's data (the default synthetic market, the default backtest settings) with a trained pair
(``--weights DIR`` holding ``tokenizer/`` and ``predictor/``, e.g. ``outputs/default``), each case is a whole
``python -m kronos.train stage=backtest`` process (wall seconds include start-up):

1. ``first``: the first backtest (1 process, 2 threads): every forecast computed.
2. ``topk`` / ``signal`` / ``cost``: the same backtest with only ``backtest.topk``, ``backtest.signal`` or the
   costs changed: forecasts read back from the store, none computed; ``ratio``: wall time / ``first``'s.
3. ``resume``: another experiment killed with SIGKILL once half its windows are stored, then run again.
4. ``two_ranks``: ``torchrun --nproc_per_node=2 ... trainer=ddp_cpu`` (1 thread each) against ``first``.
5. ``batching`` (``--batching``): windows whose paths differ between ``backtest.batch_size`` 7 and 256.
6. ``bf16`` (``--bf16 N``): bf16 autocast on the CPU against fp32 on the first N decision windows.

Forecasts/s = computed windows / the stage's forecasting seconds (``metrics.json``'s ``forecast_store``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]


class Runs:
    """Starts ``kronos.train stage=backtest`` processes under one output root with one pair of weights."""

    def __init__(self, root: Path, weights: Path, extra: list[str]) -> None:
        self.root, self.weights, self.extra = root, weights, extra

    def command(self, name: str, overrides: list[str], ranks: int = 1) -> list[str]:
        launcher = ([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
                     "--master_port=29531"] if ranks > 1 else [sys.executable])
        return [*launcher, "-m", "kronos.train", "stage=backtest", f"output_root={self.root}", f"name={name}",
                f"++weights.tokenizer={self.weights / 'tokenizer'}", f"++weights.predictor={self.weights / 'predictor'}",
                *self.extra, *overrides, *(["trainer=ddp_cpu"] if ranks > 1 else [])]

    @staticmethod
    def env(threads: int) -> dict[str, str]:
        return os.environ | {"OMP_NUM_THREADS": str(threads), "KRONOS_SHARD_WINDOWS": "128", "PYTHONHASHSEED": "0",
                             "PYTHONPATH": str(REPO)}

    def run(self, name: str, overrides: list[str] = (), threads: int = 2, ranks: int = 1) -> dict[str, Any]:
        """One whole run: wall seconds and metrics.json's forecast store record."""
        start = time.perf_counter()
        done = subprocess.run(self.command(name, list(overrides), ranks), env=self.env(threads), capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
        store = json.loads((self.root / name / "backtest" / "metrics.json").read_text())["forecast_store"]
        rate = store["computed"] / store["seconds_forecasting"] if store["computed"] else None
        return {"wall_s": round(wall, 1), "computed": store["computed"], "reused": store["reused"],
                "forecasting_s": store["seconds_forecasting"], "analysis_s": store["seconds_analysis"],
                "forecasts_per_s": round(rate, 1) if rate else None, "key": store["key"]}

    def headline(self, name: str) -> list[str]:
        return json.loads((self.root / name / "backtest" / "metrics.json").read_text())["headline"]

    def signals(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.root / name / "backtest" / "signals.csv")

    def kill_at(self, name: str, share: float, total: int) -> int:
        """Start ``name`` and SIGKILL it once ``share`` of ``total`` windows are stored; returns them."""
        proc = subprocess.Popen(self.command(name, []), env=self.env(2), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        stored = 0
        while proc.poll() is None:
            stored = sum(pq.ParquetFile(p).metadata.num_rows
                         for p in (self.root / name / "forecasts").glob("*/part-*.parquet"))
            if stored >= share * total:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        proc.wait()
        return stored


def store_bench(weights: Path, root: Path, batching: bool = False, bf16: int = 0) -> dict[str, Any]:
    """Every case of the module docstring; see there."""
    runs = Runs(root, weights, [])
    out: dict[str, Any] = {"weights": str(weights), "data": "main job (synthetic market, default backtest)"}
    out["first"] = first = runs.run("bench_first")
    # the first run's results, kept before the override runs below rewrite bench_first's report
    first_signals, first_headline = runs.signals("bench_first"), runs.headline("bench_first")
    for case, override in (("topk", "backtest.topk=8"), ("signal", "backtest.signal=mean"),
                           ("cost", "backtest.costs.close_cost=0.002")):
        out[case] = runs.run("bench_first", [override]) | {"override": override}
        out[case]["ratio"] = round(out[case]["wall_s"] / first["wall_s"], 3)
    total = first["computed"]
    killed_at = runs.kill_at("bench_resume", 0.5, total)
    out["resume"] = runs.run("bench_resume") | {"stored_at_kill": killed_at}
    out["resume"]["signals_equal_first"] = bool(runs.signals("bench_resume").equals(first_signals))
    out["resume"]["headline_equal_first"] = runs.headline("bench_resume") == first_headline
    out["two_ranks"] = runs.run("bench_two_ranks", threads=1, ranks=2)
    out["two_ranks"]["signals_equal_first"] = bool(runs.signals("bench_two_ranks").equals(first_signals))
    out["two_ranks"]["headline_equal_first"] = runs.headline("bench_two_ranks") == first_headline
    out["one_process_2_threads_forecasts_per_s"] = first["forecasts_per_s"]
    out["two_ranks_1_thread_forecasts_per_s"] = out["two_ranks"]["forecasts_per_s"]
    if batching:
        out["batching"] = batch_differences(runs)
    if bf16:
        out["bf16"] = precision_effect(weights, bf16)
    return out


def batch_differences(runs: Runs) -> dict[str, Any]:
    """Model signals of backtest.batch_size 7 against 256 (the first run), row by row."""
    runs.run("bench_batch7", ["backtest.batch_size=7"])
    a, b = runs.signals("bench_first"), runs.signals("bench_batch7")
    cols = [c for c in a.columns if c.startswith("model") or c.startswith("pred_") or c.startswith("trade_")]
    differ = ~(a[cols].eq(b[cols]) | (a[cols].isna() & b[cols].isna())).all(axis=1)
    return {"rows": int(len(a)), "rows_differing": int(differ.sum()), "columns_compared": len(cols),
            "headline_equal": runs.headline("bench_batch7") == runs.headline("bench_first"),
            "tolerance": "exact (CSV text)", "max_abs_diff_model": float((a["model"] - b["model"]).abs().max())}


def precision_effect(weights: Path, windows: int) -> dict[str, Any]:
    """bf16 autocast on the CPU vs fp32 on the first ``windows`` test windows: signal agreement and speed."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    import numpy as np

    from kronos.backtest.forecast import forecast_split
    from kronos.inference.loading import load_predictor
    from kronos.inference.settings import SamplingSettings

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train")
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    dates = np.unique(np.concatenate([np.asarray(b["datetime"]) for b in dm.eval_dataloader("test", 256)]))
    per_day = windows // max(1, len(dm.panel.instruments))
    end = pd.Timestamp(int(dates[min(len(dates) - 1, max(per_day, 1) - 1)]))
    sampling = SamplingSettings(T=0.6, top_p=0.9, sample_count=5, seed=42)
    result: dict[str, Any] = {}
    frames = {}
    for precision in ("fp32", "bf16"):
        pred = load_predictor(str(weights / "tokenizer"), str(weights / "predictor"), device="cpu",
                              precision=precision)
        start = time.perf_counter()
        frames[precision] = forecast_split(pred, dm, sampling=sampling, batch_size=256, end=end, progress=False)
        result[f"{precision}_s"] = round(time.perf_counter() - start, 2)
    a, b = frames["fp32"]["trade_mean"], frames["bf16"]["trade_mean"]
    result |= {"windows": int(len(a)), "trade_signal_rank_corr": float(a.rank().corr(b.rank())),
               "windows_differing": int((~np.isclose(a, b, rtol=0, atol=0)).sum())}
    return result
