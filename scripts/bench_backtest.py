"""Benchmark the backtest stage; prints one JSON object.

1. Forecast throughput in the backtest regime (``KronosPredictor.forecast_normalized`` on a batch of
   normalised windows), Kronos-small + Tokenizer-base shapes with random weights, KV-cached vs
   uncached decoding.
2. End-to-end time of a one-month CSI300 backtest (Qlib provider at $KRONOS_DATA_DIR/qlib_cn_csi300):
   load the panel, forecast every (date, member) window, the price checks, the Qlib portfolios of the
   model and each baseline, the report.

Usage: ``python scripts/bench_backtest.py [--quick] [--device cpu]``; ``--quick`` shrinks everything
to a smoke run (tiny model, short windows, a few days).
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny shapes, a few days")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32, help="windows per throughput call")
    ap.add_argument("--samples", type=int, default=1, help="sample paths per window (config default: 5)")
    ap.add_argument("--e2e-model", default="tiny", choices=["tiny", "small"], help="model of the end-to-end run")
    args = ap.parse_args()
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
