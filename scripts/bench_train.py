"""Training throughput: the framework's Lightning step against a bare PyTorch loop, plus data loading.

Prints one JSON object. Shapes default to the published Tokenizer-base and Kronos-small at batch 50,
window 101 (lookback 90 + horizon 11 as in the reference's fine-tuning), random weights, random inputs.

    python scripts/bench_train.py                      # CPU, both stages, data loading
    python scripts/bench_train.py --stages predictor --accelerator gpu --precision bf16-mixed [--finetune lora]
    python scripts/bench_train.py --devices 2 --strategy ddp --accelerator cpu   # per-process figures
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kronos.lightning.finetune import apply_finetune  # noqa: E402
from kronos.lightning.predictor_training import PredictorModule  # noqa: E402
from kronos.lightning.tokenizer_training import TokenizerModule  # noqa: E402
from kronos.models.kronos_model import Kronos  # noqa: E402
from kronos.models.tokenizer import KronosTokenizer  # noqa: E402

TOKENIZER_BASE = dict(
    d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
    attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0, gamma=1.1,
    zeta=0.05, group_size=4,
)
KRONOS_SMALL = dict(
    s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
    attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=True,
)


class RandomWindows(Dataset):
    """``n`` random normalised windows: x float32 [T, 6] clipped to ±5, stamp int64 [T, 5]."""

    def __init__(self, n: int, window: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, window, 6, generator=g).clamp(-5, 5)
        t = torch.arange(window)
        stamp = torch.stack([t % 60, t % 24, t % 7, 1 + t % 28, 1 + t % 12], dim=-1)
        self.stamp = stamp.expand(n, window, 5).clone()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "stamp": self.stamp[i]}


def make_module(stage: str, finetune: str = "full") -> pl.LightningModule:
    """The stage's module at Kronos-small shapes, in fine-tuning mode ``finetune`` (full, freeze, lora)."""
    optimizer = lambda params: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)  # noqa: E731
    tokenizer = KronosTokenizer(**TOKENIZER_BASE)
    if stage == "tokenizer":
        module = TokenizerModule(tokenizer, optimizer)
    else:
        module = PredictorModule(tokenizer, Kronos(**KRONOS_SMALL), optimizer)
    return apply_finetune(module, {"mode": finetune})


class StepTimer(pl.Callback):
    """Wall time of the training steps after ``warmup`` (optimizer step included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.end = time.perf_counter()


def bench_lightning(stage: str, args: argparse.Namespace) -> dict:
    module = make_module(stage, args.finetune)
    data = DataLoader(RandomWindows(args.batch * (args.warmup + args.steps), args.window), batch_size=args.batch)
    timer = StepTimer(args.warmup)
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=args.devices, strategy=args.strategy, precision=args.precision,
        max_steps=args.warmup + args.steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=3.0, num_sanity_val_steps=0,
        limit_val_batches=0, callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=data)
    seconds = timer.end - timer.start
    return {"seconds": seconds, "steps": args.steps, "samples_per_s": args.steps * args.batch / seconds,
            "world_size": trainer.world_size}


def bench_plain_loop(stage: str, args: argparse.Namespace) -> dict:
    """The reference-style loop: forward, loss, backward, clip, AdamW step; same model and data."""
    module = make_module(stage)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    module.to(device).train()
    optimizer = module.configure_optimizers()
    data = DataLoader(RandomWindows(args.batch * (args.warmup + args.steps), args.window), batch_size=args.batch)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision.startswith("bf16"))
    start = None
    for i, batch in enumerate(data):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            loss = module._losses(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.model.parameters(), 3.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": args.steps, "samples_per_s": args.steps * args.batch / seconds}


def bench_data() -> dict:
    """Data loading windows/s, from scripts/bench_data.py (real CSI300 CSV when KRONOS_DATA_DIR is set)."""
    script = Path(__file__).resolve().parent / "bench_data.py"
    env = {**os.environ, "PYTHONPATH": str(script.parent.parent)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["tokenizer", "predictor"])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--window", type=int, default=101)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--finetune", default="full", choices=["full", "freeze", "lora"],
                        help="model.finetune.mode of the Lightning run (the plain loop always trains every weight)")
    parser.add_argument("--skip-plain", action="store_true", help="only the Lightning figures (e.g. under DDP)")
    parser.add_argument("--skip-data", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)

    report: dict = {"config": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads()}
    for stage in args.stages:
        entry = {"lightning": bench_lightning(stage, args)}
        if not args.skip_plain:
            entry["plain_loop"] = bench_plain_loop(stage, args)
            entry["framework_overhead_pct"] = 100.0 * (
                entry["plain_loop"]["samples_per_s"] / entry["lightning"]["samples_per_s"] - 1.0
            )
        report[stage] = entry
    if not args.skip_data:
        report["data"] = bench_data()
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
