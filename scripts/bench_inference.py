"""Benchmark cached vs uncached Kronos decoding on the CPU; prints one JSON object.

Shapes are Kronos-small (d_model 512, 8 layers, 8 heads, ff 1024, 10+10 bits) with
Tokenizer-base (d_model 256, 4 heads, ff 512, 4+4 layers), random weights.
  case A: one series, history 400, pred_len 120, max_context 512, greedy.
  case B: 32 series, history 90, pred_len 10, sample_count 5, T 0.6, top_p 0.9.
Modes: uncached (the reference's recompute-every-window), cached (exact KV cache, the default) and,
where the window slides, rolling (the approximate ring-buffer cache, KronosPredictor(rolling_cache=True)).
Each (case, mode) runs in its own process so that its peak RSS is its own.

    python scripts/bench_inference.py [--quick] [--threads N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

SMALL = dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.0,
             attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
TOKENIZER_BASE = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                      attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
                      gamma=1.1, zeta=0.05, group_size=4)


@dataclass(frozen=True)
class Case:
    series: int
    history: int
    pred_len: int
    max_context: int
    sample_count: int
    T: float
    top_k: int
    top_p: float


CASES = {
    "A": Case(series=1, history=400, pred_len=120, max_context=512, sample_count=1, T=1.0, top_k=1, top_p=1.0),
    "B": Case(series=32, history=90, pred_len=10, sample_count=5, max_context=512, T=0.6, top_k=0, top_p=0.9),
}
QUICK = {
    "A": Case(series=1, history=100, pred_len=12, max_context=104, sample_count=1, T=1.0, top_k=1, top_p=1.0),
    "B": Case(series=4, history=30, pred_len=4, sample_count=2, max_context=512, T=0.6, top_k=0, top_p=0.9),
}


def run_one(case: Case, mode: str, repeats: int) -> dict:
    """Time ``repeats`` forecasts of ``case`` (after one warm-up) in this process."""
    from kronos import Kronos, KronosPredictor, KronosTokenizer
    from kronos.inference.settings import SamplingSettings

    torch.manual_seed(0)
    predictor = KronosPredictor(Kronos(**SMALL), KronosTokenizer(**TOKENIZER_BASE), device="cpu",
                                max_context=case.max_context, use_cache=mode != "uncached",
                                rolling_cache=mode == "rolling")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(case.series, case.history, 6, generator=gen)
    minutes = torch.arange(case.history + case.pred_len) * 5
    stamp = torch.stack([minutes % 60, (minutes // 60) % 24, (minutes // 1440) % 7, 1 + (minutes // 1440) % 28,
                         torch.full_like(minutes, 6)], dim=-1).expand(case.series, -1, -1)
    x_stamp, y_stamp = stamp[:, : case.history], stamp[:, case.history :]

    def forecast(horizon: int = case.pred_len) -> torch.Tensor:
        sampling = SamplingSettings(T=case.T, top_k=case.top_k, top_p=case.top_p, sample_count=case.sample_count, seed=2)
        return predictor.forecast_normalized(x, x_stamp, y_stamp[:, :horizon], sampling)

    forecast(horizon=2)  # warm-up (allocator, kernels) without paying for a whole uncached run
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = forecast()
        times.append(time.perf_counter() - t0)
    seconds = min(times)
    return {
        "seconds": seconds,
        "ms_per_step": 1000 * seconds / case.pred_len,
        "forecasts_per_s": case.series / seconds,
        "sample_paths_per_s": case.series * case.sample_count / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "output_checksum": float(out.double().abs().sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat: a smoke run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on shared cores more threads mostly wait on each other)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per (case, mode); the best is kept")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = QUICK if args.quick else CASES
    repeats = args.repeats or 1
    if args.worker:
        name, mode = args.worker
        print(json.dumps(run_one(cases[name], mode, repeats)))
        return

    report: dict = {"device": "cpu", "threads": torch.get_num_threads(), "quick": args.quick, "cases": {}}
    for name, case in cases.items():
        entry: dict = {"config": asdict(case)}
        slides = case.history + case.pred_len > case.max_context
        for mode in ("uncached", "cached", "rolling") if slides else ("uncached", "cached"):
            cmd = [sys.executable, __file__, "--worker", name, mode, "--repeats", str(repeats)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--threads", str(report["threads"])]
            entry[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        entry["speedup"] = entry["uncached"]["seconds"] / entry["cached"]["seconds"]
        entry["forecasts_per_s_speedup"] = entry["cached"]["forecasts_per_s"] / entry["uncached"]["forecasts_per_s"]
        if slides:
            entry["rolling_speedup_approximate"] = entry["uncached"]["seconds"] / entry["rolling"]["seconds"]
        report["cases"][name] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
