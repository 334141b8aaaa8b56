"""Every option of every config group composes and instantiates, without training.

Options are found by listing conf/<group>/ (files starting with "_" are bases, not options), so a new
data source, trainer or experiment file is covered as soon as it exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from kronos.lightning.comet import end_comet_runs
from kronos.stages.common import build_loggers, instantiate_keyed
from kronos.stages.fit import build_predictor, build_tokenizer
from kronos.train import CONFIG_DIR
from tests.lightning.conftest import compose_config

CONF = Path(CONFIG_DIR)
# Published predictor sizes in millions of parameters (KRONOS_SPEC.md); tiny is ours.
PUBLISHED_PREDICTOR_MPARAMS = {"mini": 4.1, "small": 24.7, "base": 102.3}
# Experiments whose own model shape the smoke test keeps must train a step in seconds on a CPU.
SMOKE_MAX_PREDICTOR_PARAMS = 30_000_000


def options(group: str) -> list[str]:
    """The selectable options of a config group: conf/<group>/*.yaml without the "_" bases."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def _compose(tmp_path: Path, *overrides: str) -> DictConfig:
    return compose_config([f"output_root={tmp_path / 'outputs'}", "name=cfg", *overrides])


def _fill_missing(node: DictConfig, value: str) -> None:
    """Give every mandatory (``???``) leaf ``value``: e.g. a data path, which only loading reads."""
    for key in list(node.keys()):
        if OmegaConf.is_missing(node, key):
            node[key] = value
        elif isinstance(node[key], DictConfig):
            _fill_missing(node[key], value)


def _cpu_trainer(cfg: DictConfig) -> DictConfig:
    """The trainer node with a named GPU/MPS accelerator replaced by the CPU (devices kept)."""
    trainer = cfg.trainer.copy()
    with open_dict(trainer):
        if trainer.accelerator not in ("cpu", "auto"):
            trainer.accelerator = "cpu"
            trainer.precision = "32-true" if str(trainer.precision).startswith("16") else trainer.precision
    return trainer


# Groups whose every option a test below instantiates; the rest are composed and resolved here.
INSTANTIATED_GROUPS = {"data", "model", "trainer", "logger", "callbacks", "scheduler", "experiment"}


def test_every_other_group_option_composes() -> None:
    groups = sorted(p.name for p in CONF.iterdir() if p.is_dir())
    assert INSTANTIATED_GROUPS | {"stage", "backtest"} <= set(groups)
    for group in sorted(set(groups) - INSTANTIATED_GROUPS):
        for option in options(group):
            if group == "launcher":  # resolves against the launcher plugin's runtime config: compose only
                compose_config([f"{group}={option}"])
                continue
            OmegaConf.to_container(compose_config([f"{group}={option}"]), resolve=True, throw_on_missing=False)


@pytest.mark.parametrize("data", options("data"))
def test_data_source_instantiates(data: str, tmp_path: Path) -> None:
    cfg = _compose(tmp_path, f"data={data}")
    _fill_missing(cfg.data, str(tmp_path))
    datamodule = instantiate(cfg.data, _convert_="all")
    assert type(datamodule).__name__ == "KronosDataModule"
    assert (datamodule.lookback, datamodule.horizon) == (cfg.data.lookback, cfg.data.horizon)
    assert callable(getattr(datamodule.source, "load", None))


@pytest.mark.parametrize("model", options("model"))
def test_model_shape_instantiates(model: str, tmp_path: Path) -> None:
    cfg = _compose(tmp_path, f"model={model}")
    tokenizer, predictor = build_tokenizer(cfg), build_predictor(cfg)
    assert (predictor.config["s1_bits"], predictor.config["s2_bits"]) == (
        tokenizer.config["s1_bits"], tokenizer.config["s2_bits"])
    n_params = sum(p.numel() for p in predictor.parameters())
    if model in PUBLISHED_PREDICTOR_MPARAMS:
        assert round(n_params / 1e6, 1) == PUBLISHED_PREDICTOR_MPARAMS[model]
    with torch.no_grad():  # the pair works together: a window's tokens feed the predictor
        x = torch.randn(1, 8, tokenizer.config["d_in"])
        s1, s2 = tokenizer.encode(x, half=True)
        losses = predictor.compute_loss(s1, s2, torch.zeros(1, 8, 5, dtype=torch.long))
    assert torch.isfinite(losses["loss"])


@pytest.mark.parametrize("trainer", options("trainer"))
def test_trainer_instantiates_on_cpu(trainer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # what torchrun would set for the ddp configs
    cfg = _compose(tmp_path, f"trainer={trainer}")
    built = instantiate(_cpu_trainer(cfg), callbacks=[], logger=False)
    assert built.max_epochs == cfg.trainer.max_epochs
    assert built.gradient_clip_val == cfg.optim.grad_clip


@pytest.mark.parametrize("logger", options("logger"))
def test_logger_instantiates(logger: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("COMET_API_KEY", "COMET_WORKSPACE"):
        monkeypatch.delenv(key, raising=False)  # offline: never the network
    cfg = _compose(tmp_path, f"logger={logger}")
    built = build_loggers(cfg)
    assert len(built) == len([k for k, v in cfg.logger.items() if v is not None])
    end_comet_runs(built)


@pytest.mark.parametrize("callbacks", options("callbacks"))
def test_callbacks_instantiate(callbacks: str, tmp_path: Path) -> None:
    cfg = _compose(tmp_path, f"callbacks={callbacks}")
    built = instantiate_keyed(cfg.callbacks)
    assert built and set(built) == {k for k, v in cfg.callbacks.items() if v is not None}


@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_scheduler_reaches_the_peak_rate(scheduler: str, tmp_path: Path) -> None:
    cfg = _compose(tmp_path, f"scheduler={scheduler}", "optim.lr=0.01")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = instantiate(cfg.optim.optimizer)([param])
    schedule = instantiate(cfg.scheduler)(optimizer, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert max(rates) == pytest.approx(0.01) and rates[0] < 0.01 and rates[-1] < 0.01


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_instantiates(experiment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each experiment's own data source, model shape (or pretrained starting point), trainer, loggers
    and callbacks are built from its composed config."""
    monkeypatch.delenv("COMET_API_KEY", raising=False)
    cfg = compose_config([f"output_root={tmp_path / 'outputs'}", f"experiment={experiment}"])
    _fill_missing(cfg, str(tmp_path))
    assert cfg.name == experiment  # each experiment writes outputs/<its name>/
    instantiate(cfg.data, _convert_="all")
    for kind in ("tokenizer", "predictor"):
        if cfg.model[kind].get("pretrained"):  # starts from published weights: loading needs the hub
            assert isinstance(cfg.model[kind].pretrained, str)
        else:
            (build_tokenizer if kind == "tokenizer" else build_predictor)(cfg)
    loggers = build_loggers(cfg)
    instantiate(_cpu_trainer(cfg), callbacks=list(instantiate_keyed(cfg.callbacks).values()), logger=loggers or False)
    end_comet_runs(loggers)


def test_optuna_search_composes_with_the_monitor(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=optuna_lr_batch", "monitor.mode=max"],
                      return_hydra_config=True)
    assert cfg.optimized_metric == cfg.monitor.metric
    assert cfg.hydra.sweeper.direction == "maximize"
    assert "optim.lr" in cfg.hydra.sweeper.params
