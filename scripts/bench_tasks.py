"""Benchmark the paper's task suite of ``stage=evaluate``; prints one JSON object.

Runs the evaluate stage's scoring (accuracy + the tasks) on a data set with a random-weight pair of the
shapes of ``conf/model/<model>.yaml`` (tiny or small: Kronos-small with Tokenizer-base), so the cost
of the suite at those shapes is known without trained weights. Reports the suite's wall time, its
forecast passes and forecasts per second (one forecast = one origin's sample paths of one pass), the
garch fits and each task's seconds.

    python scripts/bench_tasks.py                                    # the main job's synthetic market, tiny
    python scripts/bench_tasks.py --model small --override evaluate.stride=20   # Kronos-small shapes, fewer origins
    python scripts/bench_tasks.py --override data=csv --override data.source.path=/path/to/csvs
    python scripts/bench_tasks.py --override experiment=crypto_hourly --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _pair(cfg: Any) -> Any:
    """A KronosPredictor with random (seeded) weights of the config's model shapes, on the CPU."""
    from omegaconf import OmegaConf

    from kronos import Kronos, KronosPredictor, KronosTokenizer

    tok_cfg = OmegaConf.to_container(cfg.model.tokenizer.config, resolve=True)
    pred_cfg = OmegaConf.to_container(cfg.model.predictor.config, resolve=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return KronosPredictor(Kronos(**pred_cfg), KronosTokenizer(**tok_cfg), device="cpu",
                               max_context=int(cfg.evaluate.max_context), clip=float(cfg.data.clip))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "small"), default="tiny", help="model shapes (random weights)")
    parser.add_argument("--override", action="append", default=[], help="Hydra override (repeatable)")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: every task the data allows)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from kronos.evaluate.runner import ModelForecaster, run_evaluate
    from kronos.evaluate.settings import EvaluateSettings
    from kronos.train import CONFIG_DIR

    overrides = [f"model={args.model}", "evaluate.device=cpu", *args.override]
    if args.tasks is not None:
        overrides.append(f"evaluate.tasks=[{args.tasks}]")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    settings = EvaluateSettings.from_config(cfg.evaluate)
    model = ModelForecaster("kronos", _pair(cfg))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics = run_evaluate([model], datamodule, settings, Path(tmp) / "evaluate")
        total = time.perf_counter() - start
    suite = metrics["task_suite"]
    out = {
        "model": args.model,
        "overrides": args.override,
        "threads": args.threads,
        "origins": metrics["origins"],
        "series": metrics["series"],
        "lookback": metrics["lookback"],
        "horizon": metrics["horizon"],
        "evaluate_seconds": round(total, 2),
        "suite_seconds": suite["seconds"],
        "suite_forecast_seconds": suite["forecast_seconds"],
        "forecasts_per_second": suite["forecasts_per_second"],
        "forecast_passes": suite["forecast_passes"],
        "tasks_run": suite["run"],
        "tasks_skipped": suite["skipped"],
        "task_seconds": {t: metrics["tasks"][t]["seconds"] for t in suite["run"]},
        "garch": metrics["tasks"].get("volatility", {}).get("garch_cost"),
        "garch_sim": metrics["tasks"].get("generation", {}).get("garch_sim_cost"),
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
