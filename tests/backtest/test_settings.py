"""BacktestSettings: one definition of the defaults (the YAML's), one validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from kronos.backtest.settings import BacktestSettings, BacktestSettingsError, Costs

YAML = Path(__file__).resolve().parents[2] / "conf" / "backtest" / "topk_dropout.yaml"


def test_code_defaults_are_the_yaml_defaults() -> None:
    raw = OmegaConf.load(YAML)
    # Nothing interpolated: a ${...} could disagree with the code default depending on other groups.
    assert not any(OmegaConf.is_interpolation(raw, key) for key in raw)
    yaml = OmegaConf.to_container(raw, resolve=True)
    code = BacktestSettings().as_dict()
    assert set(yaml) == set(code)
    assert yaml == code
    assert BacktestSettings.from_config(raw) == BacktestSettings()


def test_honest_defaults() -> None:
    s = BacktestSettings()
    assert s.anchor == "last_close" and s.baselines == ("momentum", "reversal", "volume", "low_vol")
    assert s.region == "auto" and s.limit_threshold == "region"
    assert s.risk_degree == 1.0 and s.max_participation is None and s.quantiles == 5 and s.neutralize == ()
    # The old name's release is over: 'persistence' is refused like any unknown baseline, naming the valid ones.
    with pytest.raises(BacktestSettingsError, match="'persistence' is not one of .*'momentum'"):
        BacktestSettings.from_config({"baselines": ["persistence"]})


def test_from_config_takes_a_dict_a_node_or_a_full_config() -> None:
    a = BacktestSettings.from_config({"topk": 4, "n_drop": 1, "costs": {"open_cost": 0.001}, "baselines": "reversal"})
    assert a.topk == 4 and a.costs == Costs(open_cost=0.001) and a.baselines == ("reversal",)
    b = BacktestSettings.from_config(OmegaConf.create({"backtest": {"topk": 4, "n_drop": 1}}))
    assert b.topk == 4 and b.anchor == "last_close"
    assert dataclasses.is_dataclass(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.topk = 3  # type: ignore[misc]


@pytest.mark.parametrize("bad,match", [
    ({"anchor": "observed"}, r"backtest.anchor='observed' is not one of \['last_close', 'reconstructed'\]"),
    ({"baselines": ["momentum", "trend"]}, r"backtest.baselines='trend'"),
    ({"neutralize": ["sector"]}, r"backtest.neutralize='sector'"),
    ({"quantiles": 1}, r"backtest.quantiles=1"),
    ({"risk_degree": 1.2}, r"backtest.risk_degree=1.2"),
    ({"max_participation": 0}, r"backtest.max_participation=0"),
    ({"signal": "median"}, r"backtest.signal='median'"),
    ({"baselines": []}, r"backtest.baselines is empty"),
    ({"region": "eu"}, r"backtest.region='eu'"),
    ({"limit_threshold": 1.5}, r"backtest.limit_threshold=1.5"),
    ({"limit_threshold": "board"}, r"backtest.limit_threshold='board'"),
    ({"topk": 3, "n_drop": 5}, r"backtest.n_drop=5 exceeds backtest.topk=3"),
    ({"deal_price": "vwap"}, r"backtest.deal_price='vwap'"),
    ({"split": "validation"}, r"backtest.split='validation' is not one of \['train', 'val', 'test'\]"),
    ({"topkk": 3}, r"backtest has unknown keys \['topkk'\]"),
    ({"costs": {"open": 0.1}}, r"backtest.costs has unknown keys \['open'\]"),
])
def test_bad_values_name_the_key(bad, match) -> None:
    with pytest.raises(BacktestSettingsError, match=match):
        BacktestSettings.from_config(bad)


def test_paper_investment_preset_composes() -> None:
    from tests.lightning.conftest import compose_config

    cfg = compose_config(["experiment=paper_investment"])
    s = BacktestSettings.from_config(cfg.backtest)
    assert cfg.name == "paper_investment" and cfg.data.source.market == "csi300"
    assert (cfg.data.lookback, cfg.data.horizon) == (90, 10)
    assert (s.topk, s.n_drop, s.hold_thresh, s.signal) == (50, 5, 5, "mean")
    assert s.costs.open_cost == s.costs.close_cost == 0.0015
    assert (s.sampling.T, s.sampling.top_p, s.sampling.sample_count) == (0.6, 0.9, 10)
    assert s.risk_degree == 1.0


