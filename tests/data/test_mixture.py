"""Mixtures: each epoch's windows follow the weights; per-component splits; recorded in training_info.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError
from kronos.data.mixture import MixtureSource
from kronos.data.synthetic import SyntheticSource
from tests.lightning.conftest import FAST_RUN, make_cfg  # noqa: F401 - make_cfg is a fixture

L, H = 16, 4


def _mixture(wa: float = 0.25, wb: float = 0.75) -> MixtureSource:
    # "big" has 5x the windows of "small" and starts a year later (its own calendar, its own splits)
    return MixtureSource({
        "big": {"source": SyntheticSource(n_instruments=10, n_steps=200, seed=1, start="2021-01-01"), "weight": wa},
        "small": {"source": SyntheticSource(n_instruments=2, n_steps=200, seed=2), "weight": wb},
    })


def _component_of_draws(dm: KronosDataModule, epoch: int) -> np.ndarray:
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(epoch)
    inst, _ = dm.dataset("train").locate(np.fromiter(sampler, dtype=np.int64))
    return np.array([str(n).split(":")[0] for n in dm.store.instruments[inst]])


@pytest.mark.parametrize("samples", [400, None])
def test_each_epoch_follows_the_weights(samples: int | None) -> None:
    dm = KronosDataModule(_mixture(), L, H, batch_size=8, samples_per_epoch=samples, seed=0)
    big, small = dm.describe()["mixture"]
    n_big, n_small = big["splits"]["train"]["windows"], small["splits"]["train"]["windows"]
    assert n_big == 5 * n_small  # the sizes differ, the draws must not follow them
    total = samples or n_big + n_small
    first = _component_of_draws(dm, 0)
    assert len(first) == total
    assert (first == "small").sum() == round(0.75 * total) and (first == "big").sum() == total - round(0.75 * total)
    second = _component_of_draws(dm, 1)
    assert (second == "small").sum() == (first == "small").sum() and not np.array_equal(first, second)
    # the components are interleaved, not drawn one after the other
    assert 0.5 < (first[: total // 2] == "small").mean() / 0.75 < 1.5


def test_components_keep_their_own_calendars_and_splits() -> None:
    info = KronosDataModule(_mixture(), L, H, batch_size=8).describe()
    big, small = info["mixture"]
    assert [big["name"], small["name"]] == ["big", "small"] and big["weight"] == 0.25 and small["share"] == 0.75
    assert big["instruments"] == 10 and small["rows"] == 400
    assert big["splits"]["train"]["start"].startswith("2021-01-01")
    assert small["splits"]["train"]["start"].startswith("2020-01-01")
    for comp in (big, small):
        assert all(comp["splits"][s]["windows"] > 0 for s in ("train", "val", "test"))
    assert info["splits"]["train"]["windows"] == big["splits"]["train"]["windows"] + small["splits"]["train"]["windows"]


def test_a_zero_weight_component_is_never_drawn_for_training() -> None:
    dm = KronosDataModule(_mixture(1.0, 0.0), L, H, batch_size=8, samples_per_epoch=200)
    assert set(_component_of_draws(dm, 0)) == {"big"}
    assert len(dm.dataset("val")) > len(KronosDataModule(_mixture(1.0, 0.0).components["big"][0], L, H).dataset("val"))


def test_bad_weights_are_one_clear_error() -> None:
    src = SyntheticSource(n_instruments=2, n_steps=100)
    with pytest.raises(DataValidationError, match=r"components.a.weight=-1.0"):
        MixtureSource({"a": {"source": src, "weight": -1}})
    with pytest.raises(DataValidationError, match="all mixture weights are 0"):
        MixtureSource({"a": {"source": src, "weight": 0}})
    with pytest.raises(DataValidationError, match=r"components.a: expected \{source"):
        MixtureSource({"a": {"weight": 1}})
    short = MixtureSource({"a": {"source": src, "weight": 1}, "b": {"source": SyntheticSource(2, 25), "weight": 1}})
    with pytest.raises(DataValidationError, match=r"split 'train'|component\(s\) \['b'\]"):
        KronosDataModule(short, L, H).setup()


def test_mixture_batches_are_the_same_from_the_mmap_store(tmp_path: Path) -> None:
    args = dict(lookback=L, horizon=H, batch_size=16, samples_per_epoch=64, seed=5)
    ram = KronosDataModule(_mixture(), **args)
    mm = KronosDataModule(_mixture(), store={"enabled": True, "dir": str(tmp_path)}, **args)
    assert ram.describe()["mixture"] == mm.describe()["mixture"]
    for a, b in zip(ram.train_dataloader(), mm.train_dataloader(), strict=True):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["stamp"], b["stamp"])
    # re-weighting does not rebuild the store (weights are not part of its fingerprint)
    again = KronosDataModule(_mixture(0.9, 0.1), store={"enabled": True, "dir": str(tmp_path)}, **args)
    assert again.store.location == mm.store.location and [g.weight for g in again.store.groups] == [0.9, 0.1]


def test_training_info_records_the_mixture(make_cfg) -> None:
    from kronos.train import train

    cfg = make_cfg("stage=tokenizer", "data=mixture", "data.source.components.market_a.source.n_instruments=3",
                   "data.source.components.market_a.source.n_steps=160",
                   "data.source.components.market_b.source.n_instruments=2",
                   "data.source.components.market_b.source.n_steps=120", *FAST_RUN, fast=False)
    result = train(cfg)
    info = json.loads((Path(result["tokenizer"]) / "training_info.json").read_text())
    mixture = info["data"]["mixture"]
    assert [(c["name"], c["weight"]) for c in mixture] == [("market_a", 0.7), ("market_b", 0.3)]
    assert info["data"]["instruments"] == 5 and info["data"]["source"] == "mixture(market_a, market_b)"
