"""`python -m kronos.train`: compose the Hydra config and run the experiment's stages.

    python -m kronos.train                                   # all stages on the synthetic market
    python -m kronos.train stage=tokenizer data=qlib_csi300 name=csi300 model=small
    python -m kronos.train -m stage=predictor optim.lr=1e-5,4e-5
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from dotenv import find_dotenv, load_dotenv
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

log = logging.getLogger("kronos.train")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _sweep_run_dir(cfg: DictConfig) -> str | None:
    """A per-job directory below the experiment for sweep jobs (None for a single run).

    The key is ``sweep_key`` (set by scripts/torchrun_sweep.sh) or, under a Hydra multirun, the job's
    override string, so every job gets its own directory while reading the experiment's exports.
    """
    key = cfg.get("sweep_key")
    if not key and HydraConfig.initialized():
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            key = hc.job.override_dirname
            if not key or len(key) > 80:  # long override lists make unwieldy (or invalid) directory names
                key = f"job{hc.job.num}"
    return str(Path(cfg.run_dir) / "sweeps" / str(key).replace("/", "_")) if key else None


def stage_config(cfg: DictConfig, stage: str) -> DictConfig:
    """A copy of ``cfg`` for running ``stage``: ``stage.current`` and that stage's learning rate set."""
    scfg = cfg.copy()
    with open_dict(scfg):
        scfg.stage.current = stage
        per_stage_lr = scfg.stage.get("lr")
        if per_stage_lr and stage in per_stage_lr:
            scfg.optim.lr = per_stage_lr[stage]
    return scfg


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.stage.run`` in order; return exported paths and backtest metrics.

    The datamodule is built and validated once, before any training, so bad input stops the run
    before a single step.
    """
    from kronos.lightning.stages import fit_stage  # heavy imports after arg parsing

    sweep_dir = _sweep_run_dir(cfg)
    if sweep_dir is not None:
        with open_dict(cfg):
            cfg.run_dir = sweep_dir
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")

    produced: dict[str, Path] = {}
    result: dict[str, Any] = {"run_dir": str(cfg.run_dir)}
    is_zero = True
    for stage in cfg.stage.run:
        scfg = stage_config(cfg, stage)
        if stage in ("tokenizer", "predictor"):
            pl.seed_everything(cfg.seed, workers=True)
            export, trainer = fit_stage(scfg, stage, datamodule, produced)
            is_zero = trainer.is_global_zero
            best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
            result["val/loss"] = float(best) if best is not None else None
            if export is not None:
                produced[stage] = export
                result[stage] = str(export)
        elif stage == "backtest":
            if is_zero:  # forecasts and reports are written by rank zero alone
                from kronos.experiment import Experiment
                from kronos.stages.backtest import backtest_stage

                result["backtest"] = backtest_stage(scfg, datamodule, Experiment.from_config(scfg), produced)
        elif stage == "evaluate":
            if is_zero:
                from kronos.experiment import Experiment
                from kronos.stages.evaluate import evaluate_stage

                result["evaluate"] = evaluate_stage(scfg, datamodule, Experiment.from_config(scfg), produced)
        else:
            raise ValueError(f"unknown stage {stage!r}: expected tokenizer, predictor, backtest or evaluate")
    return result


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input or a missing prerequisite: shown as one message, no traceback."""
    from kronos.backtest.settings import BacktestSettingsError
    from kronos.data.errors import DataValidationError
    from kronos.evaluate.settings import EvaluateConfigError
    from kronos.experiment import WeightsNotFoundError
    from kronos.inference.validation import ForecastInputError
    from kronos.lightning.base import NonFiniteLossError
    from kronos.lightning.finetune import FinetuneConfigError
    from kronos.lightning.stages import StageInputError
    from kronos.models.hub import CheckpointError

    return (DataValidationError, StageInputError, CheckpointError, NonFiniteLossError, BacktestSettingsError,
            WeightsNotFoundError, EvaluateConfigError, ForecastInputError, FinetuneConfigError)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point: ``train(cfg)``; bad input exits with status 2 and one clear message.

    Returns ``cfg.optimized_metric`` (e.g. ``val/loss``) for Hydra sweepers such as Optuna.
    """
    try:
        result = train(cfg)
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    log.info("done: %s", {k: v for k, v in result.items() if k not in ("backtest", "evaluate")})
    metric = cfg.get("optimized_metric")
    return result.get(metric) if metric else None


def main() -> None:
    """Console entry (``python -m kronos.train``, ``kronos-train``): read ``.env``, then run Hydra."""
    load_dotenv(find_dotenv(usecwd=True))  # secrets and paths from .env; the environment wins
    hydra_main()


if __name__ == "__main__":
    main()
