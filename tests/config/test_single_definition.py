"""Each value is defined once: code defaults agree with the config, paths agree with Experiment, one
learning rate, one monitor metric, one window."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from omegaconf import DictConfig, OmegaConf

from kronos.data.splits import DEFAULT_SPLITS
from kronos.experiment import Experiment
from kronos.stages.common import stage_config
from kronos.train import CONFIG_DIR
from tests.config.test_instantiate import options
from tests.lightning.conftest import compose_config

CONF = Path(CONFIG_DIR)
# Code defaults whose None stands for a value defined in code: compare that value.
NONE_MEANS = {("kronos.data.datamodule.KronosDataModule", "splits"): DEFAULT_SPLITS}


def _target(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _nodes_with_targets(node: Any, where: str) -> Iterator[tuple[str, dict]]:
    """(location, node) for every mapping with a ``_target_`` inside a plain YAML container."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield where, node
        for key, value in node.items():
            yield from _nodes_with_targets(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nodes_with_targets(value, f"{where}[{i}]")


def _default_options() -> dict[str, str]:
    """Group -> option selected by conf/train.yaml's defaults list."""
    chosen = {}
    for entry in OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"))["defaults"]:
        if isinstance(entry, dict):
            (group, option), = entry.items()
            if option is not None and "/" not in group and not group.startswith("override"):
                chosen[group] = option
    return chosen


def _config_defaults() -> list[tuple[str, str, dict]]:
    """(file, location, node) of each kronos ``_target_`` node in conf/: the node that defines its
    defaults. When several options of one group build the same target (e.g. two schedule shapes), the
    option train.yaml selects is the one that defines the defaults."""
    found: dict[tuple[str, str], list[tuple[str, str, dict]]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        rel = path.relative_to(CONF)
        for where, node in _nodes_with_targets(raw, rel.stem):
            if str(node["_target_"]).startswith("kronos."):
                found.setdefault((str(rel.parent), node["_target_"]), []).append((str(rel), where, node))
    chosen = _default_options()
    result = []
    for (group, _), entries in found.items():
        if len(entries) > 1:
            entries = [e for e in entries if Path(e[0]).stem == chosen.get(group)]
        result.extend(entries)
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_code_defaults_agree_with_config_defaults() -> None:
    """Every keyword default of a kronos class/function built from config equals the config's value
    (interpolated values are defined elsewhere, once, and skipped)."""
    checked, disagree = [], []
    for file, where, node in _config_defaults():
        target = node["_target_"]
        for name, param in inspect.signature(_target(target)).parameters.items():
            if param.default is inspect.Parameter.empty or name not in node:
                continue
            value = node[name]
            if isinstance(value, str) and "${" in value:
                continue
            default = param.default
            if default is None:
                default = NONE_MEANS.get((target, name), None)
            checked.append(f"{target}.{name}")
            if _plain(default) != _plain(value):
                disagree.append(f"{file} {where}.{name} = {value!r} but {target} defaults to {default!r}")
    assert not disagree, "\n".join(disagree)
    for must in ("KronosDataModule.splits", "SyntheticSource.n_instruments", "SyntheticSource.signal_strength",
                 "QlibSource.market", "CSVSource.on_nan", "warmup_cosine.start_factor"):
        assert any(c.endswith(must) for c in checked), f"{must} was not compared"


@pytest.mark.parametrize("sweep", [None, "optim.lr=1e-4"])
@pytest.mark.parametrize("stage", ["tokenizer", "predictor"])
def test_config_paths_are_the_experiment_layout(stage: str, sweep: str | None, tmp_path: Path) -> None:
    """Callbacks and loggers interpolate ${run_dir}; what they resolve to is Experiment's layout, so a
    resume (Experiment.last_checkpoint) finds what ModelCheckpoint wrote, and consumers find exports."""
    from hydra import compose, initialize_config_dir

    overrides = [f"output_root={tmp_path}", "name=exp", f"stage={stage}", "logger=many"]
    experiment = Experiment(tmp_path / "exp")
    if sweep:
        experiment = experiment.sweep(sweep)
        overrides.append(f"run_dir='{experiment.root}'")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    assert Experiment.from_config(cfg) == experiment
    cfg = stage_config(cfg, stage)
    assert Path(cfg.callbacks.model_checkpoint.dirpath) == experiment.checkpoint_dir(stage)
    assert Path(cfg.callbacks.model_checkpoint.dirpath, "last.ckpt") == experiment.last_checkpoint(stage)
    assert Path(cfg.callbacks.export.export_dir) == experiment.export_dir(stage)
    for name in ("csv", "tensorboard"):
        assert Path(cfg.logger[name].save_dir) == experiment.logs_dir
    assert Path(cfg.hydra.run.dir) == experiment.hydra_dir(stage)


def _keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key path of a nested dict."""
    for key, value in node.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict):
            yield from _keys(value, path + ".")


@pytest.mark.parametrize("stage", options("stage"))
def test_learning_rate_lives_in_optim_and_model_only(stage: str) -> None:
    """`optim.lr` (default null) and the per-stage defaults `model.lr.*`: no stage config restates it."""
    cfg = compose_config([f"stage={stage}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    lr_keys = sorted(k for k in _keys(resolved) if k.rsplit(".", 1)[-1] == "lr")
    assert lr_keys == ["model.lr", "optim.lr", "optim.optimizer.lr"]
    assert resolved["optim"]["lr"] is None


def test_monitor_metric_is_read_from_one_place() -> None:
    cfg = compose_config(["monitor.metric=val/recon_loss", "monitor.mode=max"])
    for name in ("model_checkpoint", "early_stopping", "export"):
        assert (cfg.callbacks[name].monitor, cfg.callbacks[name].mode) == ("val/recon_loss", "max")
    assert compose_config(["hparams_search=optuna_lr_batch"]).optimized_metric == "val/loss"


@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_window_and_benchmark_defined_once_in_data(experiment: str | None) -> None:
    """Lookback/horizon live only in `data`; so does the benchmark (backtest.benchmark null falls back to it)."""
    chosen = [f"experiment={experiment}"] if experiment else []
    cfg = compose_config([*chosen, "data.benchmark=SH000300"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    window_keys = [k for k in _keys(resolved) if k.rsplit(".", 1)[-1] in ("lookback", "horizon")]
    assert window_keys == ["data.lookback", "data.horizon"]
    assert resolved["data"]["benchmark"] == "SH000300" and resolved["backtest"]["benchmark"] is None


@pytest.mark.parametrize("data", options("data"))
def test_data_configs_share_one_window_base(data: str) -> None:
    """Each data option takes its window/split/batch keys from _window.yaml (directly or through its
    base), restating only what differs from it."""
    raw: DictConfig = OmegaConf.load(CONF / "data" / f"{data}.yaml")
    defaults = [d for d in raw.get("defaults", []) if d != "_self_"]
    assert defaults and (defaults[0] == "_window" or (CONF / "data" / f"{defaults[0]}.yaml").is_file())
    if defaults[0] == "_window":
        base = OmegaConf.load(CONF / "data" / "_window.yaml")
        restated = [k for k in base if k in raw and raw[k] == base[k]]
        assert not restated, f"data/{data}.yaml restates _window.yaml's {restated}"
