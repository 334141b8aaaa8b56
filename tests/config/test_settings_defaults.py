"""One way from config to settings (kronos.settings_io), and defaults in one place: every settings type's code
defaults equal its YAML's, and exactly the keys whose YAML value follows another group (${seed}, ...) have none."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from kronos.backtest.settings import BacktestSettings
from kronos.errors import ConfigError
from kronos.evaluate.settings import EvaluateSettings
from kronos.lightning.finetune import FinetuneSettings
from kronos.settings_io import settings_from_config
from kronos.train import CONFIG_DIR

CONF = Path(CONFIG_DIR)
# (settings type, YAML file, the group's key in that file or None when the file is the group)
GROUPS = [(BacktestSettings, "backtest/topk_dropout.yaml", None), (EvaluateSettings, "evaluate/default.yaml", None),
          (FinetuneSettings, "model/_finetune.yaml", "finetune")]
CONTEXT = {"seed": 7, "data": {"horizon": 10}}  # what the interpolations of the groups read


def _interpolates(node: object) -> bool:
    if isinstance(node, DictConfig):
        return any(OmegaConf.is_interpolation(node, k) or _interpolates(node._get_node(k)) for k in node)
    return OmegaConf.is_list(node) and any(_interpolates(v) for v in node)


def _group(path: str, key: str | None) -> DictConfig:
    raw = OmegaConf.load(CONF / path)
    return raw[key] if key else raw


@pytest.mark.parametrize(("cls", "path", "key"), GROUPS, ids=[g[1] for g in GROUPS])
def test_code_defaults_are_the_yaml_defaults(cls, path: str, key: str | None) -> None:
    group = _group(path, key)
    follows = {k for k in group if OmegaConf.is_interpolation(group, k) or _interpolates(group._get_node(k))}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert required == follows, "a code default exactly where the YAML value is literal"
    assert {f.name for f in dataclasses.fields(cls)} == set(group), "the YAML lists every setting"
    built = cls.from_config(OmegaConf.merge(CONTEXT, {"group": group}).group)
    assert built == cls(**{name: getattr(built, name) for name in required})


@dataclass(frozen=True)
class _Inner:
    a: float = 1.0
    b: int = 2


@dataclass(frozen=True)
class _Outer:
    need: str
    names: tuple[str, ...] = ("x",)
    inner: _Inner = field(default_factory=lambda: _Inner(a=0.5))
    many: tuple[_Inner, ...] = ()


def test_the_helper_builds_nested_types_and_names_bad_keys() -> None:
    out = settings_from_config(_Outer, {"need": "n", "names": "y", "inner": {"b": 3}, "many": [{"a": 2}]}, "g")
    assert out == _Outer("n", ("y",), _Inner(a=0.5, b=3), (_Inner(a=2.0),))  # inner keeps its parent's a=0.5
    assert isinstance(out.many[0].a, float)
    with pytest.raises(ConfigError, match=r"^g has unknown keys \['nede'\]: valid keys are"):
        settings_from_config(_Outer, {"nede": 1}, "g")
    with pytest.raises(ConfigError, match=r"^g lacks \['need'\]: set g.need$"):
        settings_from_config(_Outer, {}, "g")
    with pytest.raises(ConfigError, match=r"^g.inner has unknown keys \['c'\]"):
        settings_from_config(_Outer, {"need": "n", "inner": {"c": 1}}, "g")
    with pytest.raises(ConfigError, match="g must be a mapping"):
        settings_from_config(_Outer, [1], "g")


def test_each_rule_is_written_once() -> None:
    """The keys a settings type owns are not in the RULES table too (topk, deal_price, stride, coverage_levels...)."""
    from kronos.config_checks import RULES

    owned = ("backtest.", "evaluate.", "model.finetune.")
    assert [key for key in RULES if key.startswith(owned)] == []
