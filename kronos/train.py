"""`python -m kronos.train`: compose the Hydra config and run the experiment's stages.

    python -m kronos.train                                   # all stages on the synthetic market
    python -m kronos.train stage=tokenizer data=qlib_csi300 name=csi300 model=small
    python -m kronos.train -m stage=predictor optim.lr=1e-5,4e-5
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from dotenv import find_dotenv, load_dotenv
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from kronos.errors import KronosUserError

log = logging.getLogger("kronos.train")

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _sweep_key(cfg: DictConfig) -> str | None:
    """The sweep job's key (None for a single run): ``sweep_key`` (set by scripts/torchrun_sweep.sh) or,
    under a Hydra multirun, the job's override string, so every job gets its own directory while
    reading the experiment's exports."""
    key = cfg.get("sweep_key")
    if not key and HydraConfig.initialized():
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            key = hc.job.override_dirname
            if not key or len(key) > 80:  # long override lists make unwieldy (or invalid) directory names
                # ... but job{num} alone would be the same for another sweep's job with other values, which
                # would then overwrite this one's exports: a digest of the overrides keeps jobs apart and a
                # re-run of the same job (resume) in its own directory.
                digest = hashlib.sha1(str(key or "").encode()).hexdigest()[:10]
                key = f"job{hc.job.num}-{digest}" if key else f"job{hc.job.num}"
    return str(key) if key else None


def _rank_zero(trainer: pl.Trainer | None) -> bool:
    """Whether this process writes reports: the last trainer's view, else the launcher's environment."""
    from kronos.inference.ranks import env_rank

    return trainer.is_global_zero if trainer is not None else env_rank() == 0


def _check_weights_exist(cfg: DictConfig, experiment: Any) -> None:
    """Fail before any data is read if a stage will find no weights to consume.

    Each stage's ``needs`` in :data:`kronos.stages.table.STAGES` (what an earlier stage of this command trains
    counts as found); a stage whose needs are not ``needs_checked`` (evaluate: it may score ``evaluate.models``
    alone) is skipped.

    Raises:
        WeightsNotFoundError: naming the command that produces the missing weights.
    """
    from kronos.stages.common import weight_source
    from kronos.stages.table import STAGES

    will_train: dict[str, Path] = {}
    for name in cfg.stage.run:
        stage = STAGES[name]
        for kind in stage.needs if stage.needs_checked else ():
            weight_source(cfg, kind, experiment, will_train)
        if stage.trains:
            will_train[name] = experiment.export_dir(name)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run ``cfg.stage.run`` in order; return exported paths and the reports' metrics.

    The datamodule is built and validated once, before any training, so bad input stops the run
    before a single step. Backtest and evaluate run on rank zero only.
    """
    # Heavy imports after argument parsing.
    from kronos.config_checks import check_config
    from kronos.experiment import Experiment
    from kronos.run_lock import hold_experiment
    from kronos.inference.ranks import env_rank
    from kronos.stages.common import StageInputError
    from kronos.stages.table import STAGES

    unknown = [stage for stage in cfg.stage.run if stage not in STAGES]
    if unknown:  # before any data is read or any step trained
        raise StageInputError(f"unknown stage(s) {unknown} in stage.run: expected some of {list(STAGES)}")
    check_config(cfg, list(cfg.stage.run))  # every setting the stages read, before the directory is touched
    experiment = Experiment.from_config(cfg)
    key = _sweep_key(cfg)
    if key is not None:
        experiment = experiment.sweep(key)
        with open_dict(cfg):  # the config's paths (callbacks, loggers) interpolate run_dir
            cfg.run_dir = str(experiment.root)
    if "predictor" in cfg.stage.run:  # calibration runs after the predictor stage: its settings checked now
        from kronos.stages.calibrate import calibration_settings

        calibration_settings(cfg)
    _check_weights_exist(cfg, experiment)
    with hold_experiment(experiment.root, enabled=env_rank() == 0):  # one run per experiment directory
        return _run_stages(cfg, experiment)


def _build_data(cfg: DictConfig) -> Any:
    """``instantiate(cfg.data)``; a source or datamodule refusing its settings is one line naming them."""
    from hydra.errors import InstantiationException

    from kronos.errors import ConfigError

    try:
        return instantiate(cfg.data, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, KronosUserError):
            raise cause from None
        raise ConfigError(f"data: cannot be built from the config ({' '.join(str(err).split())[:300]})") from None


def _run_stages(cfg: DictConfig, experiment: Any) -> dict[str, Any]:
    """``train``'s work once the config is checked and the experiment directory is held: each stage's runner
    from :data:`kronos.stages.table.STAGES`, in ``stage.run`` order."""
    from kronos.stages.common import stage_config
    from kronos.stages.table import STAGES

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = _build_data(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    from kronos.preflight import preflight

    preflight(cfg, datamodule, experiment)  # what a later stage cannot do with this data, before any training

    produced: dict[str, Path] = {}
    result: dict[str, Any] = {"run_dir": str(experiment.root)}
    trainer: pl.Trainer | None = None
    for name in cfg.stage.run:
        stage, scfg = STAGES[name], stage_config(cfg, name)
        if stage.trains:
            pl.seed_everything(cfg.seed, workers=True)
            export, trainer = stage.run(scfg, name, datamodule, experiment, produced)
            best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
            result[str(cfg.monitor.metric)] = float(best) if best is not None else None
            if export is not None:
                produced[name] = export
                result[name] = str(export)
            if name == "predictor":  # the temperature, chosen on validation by rank zero
                from kronos.inference.ranks import Ranks
                from kronos.stages.calibrate import calibrate_stage

                if _rank_zero(trainer):
                    result["calibration"] = calibrate_stage(scfg, datamodule, experiment, produced)
                Ranks.from_env().barrier()  # later stages read the recorded calibration (and key forecasts by it)
        else:  # every rank forecasts its share of the windows; rank zero alone analyses and reports
            out = stage.run(scfg, datamodule, experiment, produced)
            if _rank_zero(trainer):
                result[name] = out
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point: ``train(cfg)``; bad input exits with status 2 and one clear message.

    Returns ``cfg.optimized_metric`` (``monitor.metric``, the best value of the last training stage) for
    Hydra sweepers such as Optuna.
    """
    from kronos.interrupts import stop_cleanly

    _TASK.started = True
    try:
        with stop_cleanly(f"stage.run={list(cfg.stage.run)}"):  # SIGINT/SIGTERM/full disk: one line, no traceback
            result = train(cfg)
    except KronosUserError as err:  # bad input or a missing prerequisite: one line, no traceback
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    log_story(cfg, result)
    metric = cfg.get("optimized_metric")
    return result.get(metric) if metric else None


def log_story(cfg: DictConfig, result: dict[str, Any]) -> None:
    """The last lines of the log: each stage's headline (the stage table's ``headline``), so ``tail`` of a log tells
    what the run found; then where everything is."""
    from kronos.stages.table import STAGES

    for name in cfg.stage.run:
        if name not in result and not STAGES[name].trains:  # a report stage runs on rank zero alone
            continue
        for line in STAGES[name].headline_lines(result.get(name)):
            log.info("%s: %s", name, line)
    log.info("done: %s", {k: v for k, v in result.items() if not isinstance(v, dict)})


def moved_overrides(argv: list[str]) -> str | None:
    """The message for command-line overrides of old flat sampling keys (``backtest.T=0.6``), which Hydra
    would otherwise refuse in its own words (not in struct) before any config is read; None when there is none."""
    from kronos.inference.settings import SAMPLING_KEYS, moved_sampling_message
    from kronos.stages.table import STAGES

    for stage in (s.settings[0] for s in STAGES.values() if s.settings is not None):  # the groups that sample
        keys = [key.partition(".")[2] for key in (arg.split("=", 1)[0].lstrip("+~") for arg in argv)
                if key.partition(".")[0] == stage and key.partition(".")[2] in SAMPLING_KEYS]
        if keys:
            return moved_sampling_message(stage, keys)
    return None


def _check_name_argument(argv: list[str]) -> None:
    """``name=..`` on the command line is refused before Hydra creates its run directory from it (``run_dir`` is
    ``<output_root>/<name>``); the composed config's name is checked again by ``check_config``."""
    from kronos.config_checks import RULES

    for arg in argv:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == "name":
            problem = RULES["name"].check(value.strip("'\""))
            if problem:
                print(f"error: name={value!r} {problem}: pass e.g. {RULES['name'].example}", file=sys.stderr)
                sys.exit(2)


class _TaskState:
    """Whether Hydra got as far as calling ``hydra_main`` (its own refusals come before)."""

    started = False


_TASK = _TaskState()


def _hydra_refusal(text: str) -> str:
    """Hydra's multi-line refusal of a command line (unknown key, bad override, unwritable run directory)
    as one line: its message lines without the stack trace, the HYDRA_FULL_ERROR hint or object dumps."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") for ln in lines):  # not a Hydra message: the exception's own last line
        lines = lines[-1:]
    keep = [ln for ln in lines if not ln.startswith(("Set the environment variable HYDRA_FULL_ERROR", "full_key:",
                                                      "object_type=", "See https://hydra.cc", "reference_type="))]
    return " ".join(keep)[:600] or "the command line could not be composed into a config"


def main() -> None:
    """Console entry (``python -m kronos.train``, ``kronos-train``): read ``.env``, then run Hydra.

    Hydra's own refusals (an unknown key such as ``data.lookbak=5``, a malformed override, a run directory
    it cannot create) end in one ``error:`` line and exit status 2, like every other bad input.
    """
    import io

    load_dotenv(find_dotenv(usecwd=True))  # secrets and paths from .env; the environment wins
    moved = moved_overrides(sys.argv[1:])
    if moved:
        print(f"error: {moved}", file=sys.stderr)
        sys.exit(2)
    _check_name_argument(sys.argv[1:])
    real_stderr, held = sys.stderr, io.StringIO()

    class _HeldUntilTask(io.TextIOBase):
        """stderr that keeps Hydra's pre-task output until the task starts (then passes everything on)."""

        def write(self, text: str) -> int:
            if _TASK.started:
                if held.tell():
                    real_stderr.write(held.getvalue())
                    held.seek(0)
                    held.truncate()
                return real_stderr.write(text)
            return held.write(text)

        def flush(self) -> None:
            real_stderr.flush()

        def isatty(self) -> bool:  # progress bars and colours decide on the real stream
            return real_stderr.isatty()

        def fileno(self) -> int:
            return real_stderr.fileno()

        @property
        def encoding(self) -> str:  # type: ignore[override]
            return getattr(real_stderr, "encoding", "utf-8")

    sys.stderr = _HeldUntilTask()
    try:
        hydra_main()
    except SystemExit as exit_:
        if exit_.code == 1 and not _TASK.started:
            sys.stderr = real_stderr
            print(f"error: {_hydra_refusal(held.getvalue())}", file=sys.stderr)
            sys.exit(2)
        raise
    finally:
        if sys.stderr is not real_stderr:
            sys.stderr = real_stderr
            if held.getvalue():
                real_stderr.write(held.getvalue())


def cli() -> NoReturn:
    """The console entry (``kronos-train``, ``python -m kronos.train``): :func:`main`, then the process ends
    without the interpreter's module-by-module teardown (:func:`kronos.process_exit.exit_now`, about a second
    with torch, Lightning and Qlib loaded). An unexpected exception still ends the ordinary way, traceback
    included."""
    from kronos.process_exit import exit_now

    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
        if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, status 1
            print(code, file=sys.stderr)
            code = 1
        exit_now(code or 0)
    exit_now(0)


if __name__ == "__main__":
    cli()
