"""Compare fine-tuning modes (full, full with layer-wise lr decay, freeze, LoRA) on real data.

1. Pre-trains the tiny tokenizer + predictor pair briefly on the built-in synthetic market
   (``kronos.train`` stage=tokenizer, then stage=predictor).
2. Measures that pair's validation loss on the target data before any fine-tuning (zero shot).
3. Fine-tunes each stage in each mode on the target data, the predictor always over the pre-trained
   (frozen) tokenizer so every predictor row is scored on the same tokens, and reports the best
   validation loss, trainable parameters and the median wall time of a training step.

    python scripts/compare_finetune.py                       # CSI300 daily CSV from $KRONOS_DATA_DIR, JSON
    python scripts/compare_finetune.py --format markdown --epochs 3 --train-batches 40

Prints JSON (default) or a markdown table on stdout; training logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from kronos.lightning.predictor_training import PredictorModule
from kronos.lightning.tokenizer_training import TokenizerModule
from kronos.models.kronos_model import Kronos
from kronos.models.tokenizer import KronosTokenizer
from kronos.train import CONFIG_DIR, train

CSI300_CSV = "cn_csi300_daily_csv/csi300_members_daily_2023_2026.csv"
PRETRAIN_NAME = "pretrain_synthetic"

# variant -> (model.finetune overrides, learning rate). LoRA's usual rate is ~10x full fine-tuning's:
# adapters start at zero and have few weights.
VARIANTS: dict[str, tuple[list[str], float]] = {
    "full": (["model.finetune.mode=full"], 2e-4),
    "full+layer_decay": (["model.finetune.mode=full", "model.finetune.layer_decay=0.7"], 2e-4),
    "freeze": (["model.finetune.mode=freeze", "model.finetune.freeze_first_n_blocks=1"], 2e-4),
    "lora": (["model.finetune.mode=lora", "model.finetune.lora.r=8"], 1e-3),
}


class StepTimer(Callback):
    """Wall time of every training step (forward, backward, optimizer), written as JSON at the end of fit."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.times.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        warm = self.times[3:] or self.times  # the first steps pay one-off allocation costs
        self.out.write_text(json.dumps({"steps": len(self.times), "median_s": statistics.median(warm)}))


def _compose(overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def pretrain(root: Path, epochs: int, batches: int) -> tuple[tuple[Path, Path], bool]:
    """The tiny pair trained briefly on the synthetic market: ((tokenizer_dir, predictor_dir), reused).

    A pair already exported under ``root`` by an earlier call is reused, so the comparison can be run
    a few rows at a time (``--stages`` / ``--variants``) against the same starting point.
    """
    exported = (root / PRETRAIN_NAME / "tokenizer", root / PRETRAIN_NAME / "predictor")
    if all((path / "config.json").is_file() for path in exported):
        print(f"reusing the pre-trained pair in {root / PRETRAIN_NAME}", file=sys.stderr)
        return exported, True
    out = train(_compose([
        f"output_root={root}", f"name={PRETRAIN_NAME}", "model=tiny", "data=synthetic",
        "stage=all", "stage.run=[tokenizer,predictor]", "trainer.accelerator=cpu",
        f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={batches}", "trainer.limit_val_batches=10",
        "callbacks.progress=null", "trainer.enable_progress_bar=false",
    ]))
    return (Path(out["tokenizer"]), Path(out["predictor"])), False


def zero_shot_loss(cfg: DictConfig, stage: str, tokenizer_dir: Path, predictor_dir: Path) -> float:
    """Validation loss of the pre-trained model on ``cfg.data`` (same batches and reduction as fitting)."""
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    tokenizer = KronosTokenizer.from_pretrained(tokenizer_dir)
    module: pl.LightningModule
    if stage == "tokenizer":
        module = TokenizerModule(tokenizer, torch.optim.AdamW)
    else:
        module = PredictorModule(tokenizer, Kronos.from_pretrained(predictor_dir), torch.optim.AdamW)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=cfg.trainer.limit_val_batches)
    (metrics,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    return float(metrics["val/loss"])


def finetune(root: Path, data: list[str], stage: str, variant: str, pretrained: tuple[Path, Path],
             epochs: int, batches: int, val_batches: int, zero_shot: dict[str, float]) -> dict[str, Any]:
    """Fine-tune one stage in one variant; the row of the comparison table.

    ``zero_shot`` caches the pre-trained model's validation loss per stage (the same for every variant).
    """
    overrides, lr = VARIANTS[variant]
    timer_file = root / f"steps_{stage}_{variant}.json"
    name = f"finetune_{stage}_{variant}".replace("+", "_")
    cfg = _compose([
        f"output_root={root}", f"name={name}", "model=tiny", *data, f"stage={stage}", "trainer.accelerator=cpu",
        f"model.tokenizer.pretrained={pretrained[0]}", f"model.predictor.pretrained={pretrained[1]}",
        f"model.lr.{stage}={lr}", *overrides,
        f"trainer.max_epochs={epochs}", f"trainer.limit_train_batches={batches}",
        f"trainer.limit_val_batches={val_batches}", "callbacks.progress=null", "trainer.enable_progress_bar=false",
        "callbacks.early_stopping=null",
        f"+callbacks.step_timer._target_={StepTimer.__module__}.StepTimer", f"+callbacks.step_timer.out={timer_file}",
    ])
    if stage not in zero_shot:
        zero_shot[stage] = zero_shot_loss(cfg, stage, *pretrained)
    before = zero_shot[stage]
    start = time.perf_counter()
    out = train(cfg)
    wall = time.perf_counter() - start
    info = json.loads((Path(out[stage]) / "training_info.json").read_text())
    steps = json.loads(timer_file.read_text())
    best = info["best_validation"]["value"]
    return {
        "stage": stage,
        "variant": variant,
        "mode": info["finetune"]["mode"],
        "lr": lr,
        "finetune": info["finetune"],
        "parameters": info["parameters"],
        "trainable_parameters": info["trainable_parameters"],
        "trainable_pct": round(100 * info["trainable_parameters"] / info["parameters"], 2),
        "val_loss_pretrained": round(before, 4),
        "val_loss_best": round(best, 4),
        "val_loss_change_pct": round(100 * (best - before) / abs(before), 2),
        "steps": info["global_step"],
        "step_ms_median": round(1000 * steps["median_s"], 1),
        "wall_s": round(wall, 1),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as one markdown table."""
    head = ["stage", "variant", "lr", "trainable / all params", "val loss before", "val loss after", "change",
            "step (ms, median)", "steps"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['variant']} | {r['lr']:g} | {r['trainable_parameters']:,} / {r['parameters']:,}"
            f" ({r['trainable_pct']}%) | {r['val_loss_pretrained']:.4f} | {r['val_loss_best']:.4f}"
            f" | {r['val_loss_change_pct']:+.1f}% | {r['step_ms_median']} | {r['steps']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"long CSV with a symbol column (default: $KRONOS_DATA_DIR/{CSI300_CSV})")
    parser.add_argument("--output-root", default="outputs/compare_finetune")
    parser.add_argument("--stages", default="tokenizer,predictor")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-batches", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=30)
    parser.add_argument("--val-batches", type=int, default=40)
    parser.add_argument("--format", choices=("json", "markdown"), default="json")
    args = parser.parse_args(argv)

    data_path = args.data or os.path.join(os.environ.get("KRONOS_DATA_DIR", "../shared/data"), CSI300_CSV)
    if not Path(data_path).is_file():
        parser.error(f"data file {data_path} not found: pass --data or set KRONOS_DATA_DIR")
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    # The CSV has a few suspension days without volume: skip those rows (the default stops on NaN).
    data = ["data=csv", f"data.source.path={Path(data_path).resolve()}", "data.source.symbol_column=symbol",
            "data.source.on_nan=drop"]
    root = Path(args.output_root).resolve()
    root.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    pretrained, reused = pretrain(root, args.pretrain_epochs, args.pretrain_batches)
    pretrain_s = time.perf_counter() - start
    zero_shot: dict[str, float] = {}
    rows = [
        finetune(root, data, stage, variant, pretrained, args.epochs, args.train_batches, args.val_batches, zero_shot)
        for stage in args.stages.split(",") for variant in variants
    ]
    result = {
        "data": data_path,
        "pretrain": {"data": "synthetic", "epochs": args.pretrain_epochs, "batches_per_epoch": args.pretrain_batches,
                     "wall_s": round(pretrain_s, 1)},
        "finetune": {"epochs": args.epochs, "batches_per_epoch": args.train_batches, "val_batches": args.val_batches,
                     "torch_threads": torch.get_num_threads()},
        "rows": rows,
    }
    # Rows of earlier calls with the same output root stay (one table from several short calls).
    results_file = root / "results.json"
    if results_file.is_file():
        previous = json.loads(results_file.read_text())
        if reused:  # keep how the pair was made
            result["pretrain"] = previous["pretrain"]
        done = {(r["stage"], r["variant"]) for r in rows}
        earlier = [r for r in previous["rows"] if (r["stage"], r["variant"]) not in done]
        order = {v: i for i, v in enumerate(VARIANTS)}
        rows = sorted(earlier + rows, key=lambda r: (r["stage"] != "tokenizer", order.get(r["variant"], 99)))
        result["rows"] = rows
    tmp = results_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(results_file)
    print(markdown(rows) if args.format == "markdown" else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
