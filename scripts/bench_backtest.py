"""Benchmark the backtest stage; prints one JSON object.

1. Forecast throughput in the backtest regime (``KronosPredictor.forecast_normalized`` on a batch of
   normalised windows), Kronos-small + Tokenizer-base shapes with random weights, KV-cached vs
   uncached decoding.
2. End-to-end time of a one-month CSI300 backtest (Qlib provider at $KRONOS_DATA_DIR/qlib_cn_csi300):
   load the panel, forecast every (date, member) window, the price checks, the Qlib portfolios of the
   model and each baseline, the report.

3. ``--memory``: peak RSS and forecasts/s of whole ``python -m kronos.train stage=backtest`` runs (each
   its own process, peak = that process's ``ru_maxrss``) over 1, 3 and 16 months of decision dates of
   the CSI300 test split (2025-01-01 on), for the Qlib path (``data=qlib_csi300``) and the CSV path (the
   shared CSI300 CSV, same dates), plus ``stage=evaluate`` on the whole Qlib test split. The weights are
   a trained tiny pair (``--weights DIR`` holding ``tokenizer/`` and ``predictor/``; without it one is
   trained for a few steps first). Peak RSS must not grow with the months.

4. ``--store``: the forecast store (scripts/bench_forecast_store.py): the first backtest, the same with another
   topk / signal / cost (reused forecasts), a resume after a kill at 50 %, 1 process (2 threads) vs 2 ranks
   (ddp_cpu, 1 thread each), in forecasts/s; ``--batching`` and ``--bf16 N`` add the batch-size and precision
   comparisons.

Usage: ``python scripts/bench_backtest.py [--quick] [--device cpu]``; ``--quick`` shrinks everything
to a smoke run (tiny model, short windows, a few days).
``python scripts/bench_backtest.py --memory [--weights DIR] [--months 1 3 16] [--paths qlib csv]
[--threads N] [--no-evaluate]``.
``python scripts/bench_backtest.py --store --weights outputs/default [--workdir DIR] [--batching] [--bf16 N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kronos.backtest import run_backtest  # noqa: E402
from kronos.backtest.settings import BacktestSettings  # noqa: E402
from kronos.data.datamodule import KronosDataModule  # noqa: E402
from kronos.data.features import time_features  # noqa: E402
from kronos.data.qlib_source import QlibSource  # noqa: E402
from kronos.inference.predictor import KronosPredictor  # noqa: E402
from kronos.inference.settings import SamplingSettings  # noqa: E402
from kronos.models.kronos_model import Kronos  # noqa: E402
from kronos.models.tokenizer import KronosTokenizer  # noqa: E402

TOKENIZER_BASE = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                      attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
                      gamma=1.1, zeta=0.05, group_size=4)
KRONOS_SMALL = dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.0,
                    attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)


def tiny_sizes() -> tuple[dict[str, Any], dict[str, Any]]:
    """conf/model/tiny.yaml's tokenizer and predictor constructor kwargs."""
    sizes = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "tiny.yaml"), resolve=False)
    tok = sizes["tokenizer"]["config"]
    return tok, sizes["predictor"]["config"] | {"s1_bits": tok["s1_bits"], "s2_bits": tok["s2_bits"]}


def build(model: str, device: str, use_cache: bool, max_context: int = 512) -> KronosPredictor:
    """A random-weight predictor of the named size ("small" or "tiny"), seeded."""
    tok_cfg, pred_cfg = (TOKENIZER_BASE, KRONOS_SMALL) if model == "small" else tiny_sizes()
    torch.manual_seed(0)
    return KronosPredictor(Kronos(**pred_cfg).eval(), KronosTokenizer(**tok_cfg).eval(), device=device,
                           max_context=max_context, use_cache=use_cache)


def throughput(model: str, device: str, batch: int, lookback: int, horizon: int, samples: int) -> dict[str, Any]:
    """Windows forecast per second, cached and uncached, on one random batch."""
    stamps = time_features(pd.bdate_range("2024-01-01", periods=lookback + horizon))
    x = torch.randn(batch, lookback, 6)
    x_stamp = torch.from_numpy(np.broadcast_to(stamps[:lookback], (batch, lookback, 5)).copy())
    y_stamp = torch.from_numpy(np.broadcast_to(stamps[lookback:], (batch, horizon, 5)).copy())
    out: dict[str, Any] = {"model": model, "batch": batch, "lookback": lookback, "horizon": horizon,
                           "sample_count": samples}
    for cached in (True, False):
        predictor = build(model, device, cached)
        predictor.forecast_normalized(x[:2], x_stamp[:2], y_stamp[:2], SamplingSettings(T=0.6, top_p=0.9))  # warm-up
        start = time.perf_counter()
        predictor.forecast_normalized(x, x_stamp, y_stamp, SamplingSettings(T=0.6, top_k=0, top_p=0.9, sample_count=samples))
        seconds = time.perf_counter() - start
        out["cached" if cached else "uncached"] = {"seconds": round(seconds, 3),
                                                   "forecasts_per_s": round(batch / seconds, 2)}
    out["cache_speedup"] = round(out["uncached"]["seconds"] / out["cached"]["seconds"], 2)
    return out


def end_to_end(data_dir: Path, model: str, device: str, quick: bool, samples: int) -> dict[str, Any]:
    """One month (quick: one week) of CSI300 decision dates through ``run_backtest``."""
    lookback, horizon = (20, 2) if quick else (90, 10)
    first, last = ("2026-03-02", "2026-03-06") if quick else ("2026-03-02", "2026-03-31")
    t0 = time.perf_counter()
    source = QlibSource(provider_uri=data_dir / "qlib_cn_csi300", market="csi300", start="2025-06-01", end="2026-04-30")
    datamodule = KronosDataModule(source, lookback=lookback, horizon=horizon, batch_size=64,
                                  splits={"train": ["2025-06-01", "2026-02-27"], "test": ["2026-03-01", "2026-04-30"]})
    datamodule.setup()
    t_load = time.perf_counter() - t0
    cfg = OmegaConf.load(REPO / "conf" / "backtest" / "topk_dropout.yaml")
    cfg.merge_with({"sampling": {"seed": 0, "sample_count": samples}, "benchmark": "SH000300", "start": first, "end": last})
    settings = BacktestSettings.from_config(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        metrics = run_backtest(build(model, device, True), datamodule, settings, Path(tmp) / "bench" / "backtest")
        t_run = time.perf_counter() - t1
    return {"model": model, "device": device, "decision_dates": [metrics["start"], metrics["end"]],
            "lookback": lookback, "horizon": horizon, "sample_count": samples,
            "forecasts": metrics["n_forecasts"], "instruments": metrics["n_instruments"],
            "benchmark": metrics["benchmark"], "load_s": round(t_load, 2), "backtest_s": round(t_run, 2),
            "total_s": round(t_load + t_run, 2),
            "headline_label": metrics["headline_label"],
            "model_rank_ic": metrics["model"]["ic"][metrics["headline_label"]]["rank_ic"],
            "model_rank_ic_t": metrics["model"]["ic"][metrics["headline_label"]]["rank_ic_t"],
            "bad_price_rows": metrics["bad_prices"]["count"], "warnings": len(metrics["warnings"])}


TEST_START = "2025-01-01"  # conf/data/qlib_csi300.yaml's test split; the CSV path uses the same dates
TEST_END = "2026-05-08"
CSI300_CSV = "cn_csi300_daily_csv/csi300_members_daily_2023_2026.csv"


def data_overrides(path: str, data_dir: Path) -> list[str]:
    """Hydra overrides of one data path: ``qlib`` (the shared provider) or ``csv`` (the shared CSV)."""
    if path == "qlib":
        return ["data=qlib_csi300", f"data.source.provider_uri={data_dir / 'qlib_cn_csi300'}"]
    return ["data=csv", f"data.source.path={data_dir / CSI300_CSV}", "data.source.symbol_column=symbol",
            "data.source.on_nan=drop", "data.benchmark=null",
            f"data.splits={{train:[2023-01-01,2024-06-30],val:[2024-07-01,2024-12-31],test:[{TEST_START},{TEST_END}]}}"]


def month_end(months: int) -> str:
    """The last decision date of the first ``months`` months of the test split."""
    return str((pd.Timestamp(TEST_START) + pd.DateOffset(months=months) - pd.Timedelta(days=1)).date())


def train_tiny_pair(work: Path, data_dir: Path) -> Path:
    """A tiny tokenizer + predictor pair trained for a few steps on CSI300 (``outputs/tinypair``)."""
    done = subprocess.run([sys.executable, "-m", "kronos.train", "stage=all", "stage.run=[tokenizer,predictor]",
                           "model=tiny", "trainer=cpu", "trainer.max_steps=6", "name=tinypair",
                           *data_overrides("qlib", data_dir)], cwd=work, env=_env(None), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"training the tiny pair failed: {done.stderr[-800:]}")
    return work / "outputs" / "tinypair"


def _env(threads: int | None) -> dict[str, str]:
    """The runs' environment: this checkout's kronos, no network, ``threads`` intra-op threads."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def memory_case(stage: str, path: str, months: int | None, weights: Path, work: Path, data_dir: Path,
                threads: int | None, sample_count: int, eval_tasks: str = "[]") -> dict[str, Any]:
    """One measured stage run in a fresh process: peak RSS, forecasts and forecasts/s."""
    name = f"{stage}_{path}_{months or 'all'}"
    overrides = [f"stage={stage}", f"name={name}", "trainer=cpu", *data_overrides(path, data_dir),
                 f"weights.tokenizer={weights / 'tokenizer'}", f"weights.predictor={weights / 'predictor'}"]
    if stage == "evaluate":
        overrides.append(f"evaluate.tasks={eval_tasks}")
    if stage == "backtest":
        overrides += [f"backtest.sampling.sample_count={sample_count}", f"backtest.start={TEST_START}"]
        if months:  # None or 0: the whole test split
            overrides.append(f"backtest.end={month_end(months)}")
    # Peak RSS of this child alone: RUSAGE_CHILDREN keeps the maximum over all children, so each case
    # runs from a fresh wrapper process that reports only its own child.
    # The wrapper also samples the child's resident set every 2 s (``rss_trace_mb``: [seconds, MB] once a
    # minute), which shows whether memory grows with the forecasts or stays flat.
    code = ("import json,os,resource,subprocess,sys,tempfile,time;t=time.perf_counter();"
            "err=tempfile.TemporaryFile('w+');"
            "p=subprocess.Popen(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=err,text=True);trace=[];last=-60\n"
            "while p.poll() is None:\n"
            " time.sleep(2)\n"
            " try:rss=[int(l.split()[1]) for l in open(f'/proc/{p.pid}/status') if l.startswith('VmRSS')][0]//1024\n"
            " except (OSError,IndexError):continue\n"
            " now=time.perf_counter()-t\n"
            " if now-last>=60:trace.append([round(now),rss]);last=now\n"
            "err.seek(0);tail=err.read()[-800:]\n"
            "print(json.dumps({'rc':p.returncode,'seconds':round(time.perf_counter()-t,1),"
            "'peak_rss_mb':round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024),"
            "'rss_trace_mb':trace,'stderr_tail':tail if p.returncode else None}))")
    done = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "kronos.train", *overrides], cwd=work,
                          env=_env(threads), capture_output=True, text=True, check=True)
    result: dict[str, Any] = {"stage": stage, "path": path, "months": months or "whole split",
                              **json.loads(done.stdout.strip().splitlines()[-1])}
    report = work / "outputs" / name / stage / "metrics.json"
    if result["rc"] == 0 and report.is_file():
        metrics = json.loads(report.read_text())
        count = metrics.get("n_forecasts") if stage == "backtest" else metrics.get("origins")
        result["forecasts"] = count
        if count:
            result["forecasts_per_s"] = round(count / result["seconds"], 1)
    return result


def memory_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS and forecasts/s per (path, months), and stage=evaluate over the whole split."""
    data_dir = Path(os.environ.get("KRONOS_DATA_DIR", ""))
    if not (data_dir / "qlib_cn_csi300").is_dir():
        raise SystemExit("--memory needs KRONOS_DATA_DIR pointing at the shared data (qlib_cn_csi300, cn_csi300_daily_csv)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="kronos_bench_backtest_"))
    work.mkdir(parents=True, exist_ok=True)
    weights = Path(args.weights) if args.weights else train_tiny_pair(work, data_dir)
    out: dict[str, Any] = {"weights": str(weights), "threads": args.threads or torch.get_num_threads(),
                           "sample_count": args.samples_memory, "cases": []}
    for path in args.paths:
        for months in args.months:
            case = memory_case("backtest", path, months, weights, work, data_dir, args.threads, args.samples_memory)
            out["cases"].append(case)
            print(json.dumps(case), file=sys.stderr, flush=True)
    if not args.no_evaluate:
        case = memory_case("evaluate", "qlib", None, weights, work, data_dir, args.threads, args.samples_memory,
                           args.eval_tasks)
        out["cases"].append(case)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny shapes, a few days")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32, help="windows per throughput call")
    ap.add_argument("--samples", type=int, default=1, help="sample paths per window (config default: 5)")
    ap.add_argument("--e2e-model", default="tiny", choices=["tiny", "small"], help="model of the end-to-end run")
    ap.add_argument("--memory", action="store_true", help="peak RSS and forecasts/s of whole stage runs (see above)")
    ap.add_argument("--weights", help="--memory: directory holding a trained tokenizer/ and predictor/")
    ap.add_argument("--months", type=int, nargs="+", default=[1, 3, 16], help="--memory: months of decision dates (0: the whole test split)")
    ap.add_argument("--paths", nargs="+", default=["qlib", "csv"], choices=["qlib", "csv"])
    ap.add_argument("--threads", type=int, default=None, help="--memory: OMP_NUM_THREADS of the runs")
    ap.add_argument("--samples-memory", type=int, default=5, help="--memory: backtest.sampling.sample_count")
    ap.add_argument("--no-evaluate", action="store_true", help="--memory: skip the stage=evaluate run")
    ap.add_argument("--eval-tasks", default="[]", help="--memory: evaluate.tasks of the evaluate run (default: the "
                    "accuracy task alone; the paper's tasks forecast through the same loop, at several times the cost)")
    ap.add_argument("--workdir", help="--memory/--store: where runs write outputs/ (default: a new temporary directory)")
    ap.add_argument("--store", action="store_true", help="the forecast store benchmark (needs --weights)")
    ap.add_argument("--batching", action="store_true", help="--store: batch_size 7 vs 256 differences")
    ap.add_argument("--bf16", type=int, default=0, help="--store: bf16 vs fp32 on this many windows (0: skip)")
    args = ap.parse_args()
    if args.store:
        from scripts.bench_forecast_store import store_bench

        if not args.weights:
            raise SystemExit("--store needs --weights DIR (tokenizer/ and predictor/), e.g. outputs/default")
        root = Path(args.workdir or tempfile.mkdtemp(prefix="kronos_bench_store_"))
        print(json.dumps(store_bench(Path(args.weights), root, args.batching, args.bf16), indent=2))
        return
    if args.memory:
        print(json.dumps(memory_bench(args), indent=2))
        return
    if args.quick:
        result = {"throughput": throughput("tiny", args.device, 8, 32, 4, args.samples)}
    else:
        result = {"throughput": throughput("small", args.device, args.batch, 90, 10, args.samples)}
    data_dir = os.environ.get("KRONOS_DATA_DIR")
    if data_dir and (Path(data_dir) / "qlib_cn_csi300").is_dir():
        result["end_to_end_csi300"] = end_to_end(Path(data_dir), args.e2e_model, args.device, args.quick, args.samples)
    else:
        result["end_to_end_csi300"] = "skipped: set KRONOS_DATA_DIR to the shared data (qlib_cn_csi300)"
    result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
