"""KronosDataModule: time splits, loaders, eval batches, per-device batch, describe, errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kronos.data.datamodule import KronosDataModule
from kronos.data.errors import DataValidationError
from kronos.data.panel import Panel
from kronos.data.synthetic import SyntheticSource
from tests.data.panel_source import PanelSource

L, H = 16, 4


def _dm(**kw) -> KronosDataModule:
    args = dict(source=SyntheticSource(n_instruments=5, n_steps=200, seed=1), lookback=L, horizon=H, batch_size=8)
    return KronosDataModule(**{**args, **kw})


def test_ratio_splits_are_time_ordered_and_purged() -> None:
    dm = _dm()
    info = dm.describe()
    s = info["splits"]
    assert s["train"]["end"] < s["val"]["start"] <= s["val"]["end"] < s["test"]["start"]
    inst, off = dm.dataset("train").windows.materialize()
    last_train_target = dm.store.times[dm.store.offsets[inst] + off + L + H - 1]
    assert last_train_target.max() < np.datetime64(s["val"]["start"]).astype("datetime64[ns]").astype(np.int64)
    assert info["instruments"] == 5 and info["rows"] == 1000
    # train: decisions on the first 140 dates, minus the first L-1 (no full lookback) and last H (purged)
    assert s["train"]["windows"] == 5 * (140 - (L - 1) - H)


def test_date_splits() -> None:
    dm = _dm(splits={"train": ["2020-01-01", "2020-04-30"], "val": ["2020-05-01", "2020-06-30"],
                     "test": ["2020-07-01", None]})
    batch = next(iter(dm.eval_dataloader("val", batch_size=1000)))
    dates = batch["datetime"].numpy().astype("datetime64[ns]")
    assert dates.min() >= np.datetime64("2020-05-01") and dates.max() <= np.datetime64("2020-06-30T23:59")


def test_train_batches_and_determinism() -> None:
    a, b, c = _dm(seed=3), _dm(seed=3), _dm(seed=4)
    ba, bb, bc = (next(iter(d.train_dataloader())) for d in (a, b, c))
    assert ba["x"].shape == (8, L + H, 6) and ba["stamp"].shape == (8, L + H, 5)
    assert set(ba) == {"x", "stamp"}
    assert torch.equal(ba["x"], bb["x"]) and not torch.equal(ba["x"], bc["x"])


def test_samples_per_epoch_limits_train_draws() -> None:
    loader = _dm(samples_per_epoch=24).train_dataloader()
    assert sum(len(batch["x"]) for batch in loader) == 24


def test_per_device_batch_from_attached_trainer() -> None:
    dm = _dm(batch_size=64)
    dm.trainer = SimpleNamespace(world_size=2, accumulate_grad_batches=4)
    assert dm.train_dataloader().batch_size == 8
    assert dm.val_dataloader().batch_size == 8


def test_eval_batches_cover_members_only_with_raw_prices() -> None:
    panel = SyntheticSource(n_instruments=3, n_steps=150, seed=2).load()
    member = [np.ones(150, bool) for _ in range(3)]
    member[1][135:] = False
    dm = KronosDataModule(PanelSource(Panel(panel.instruments, panel.timestamps, panel.values, member)),
                          L, H, batch_size=4)
    batches = list(dm.eval_dataloader("test", batch_size=7))
    insts = [i for b in batches for i in b["instrument"]]
    dates = torch.cat([b["datetime"] for b in batches]).numpy()
    cutoff = panel.timestamps[1][135].astype(np.int64)
    assert not any(i == "SYN001" and d >= cutoff for i, d in zip(insts, dates))
    assert "SYN001" in insts and (np.diff(dates) >= 0).all()
    b = batches[0]
    j = panel.instruments.index(b["instrument"][0])
    row = int(np.searchsorted(panel.timestamps[j].astype(np.int64), b["datetime"][0].item()))
    np.testing.assert_array_equal(b["close"][0].numpy(), panel.values[j][row - L + 1 : row + H + 1, 3])
    assert b["mean"].shape == (7, 6) and b["std"].dtype == torch.float32


def test_too_few_rows_for_one_window_is_a_validation_error() -> None:
    dm = _dm(source=SyntheticSource(n_instruments=2, n_steps=30), lookback=90, horizon=10)
    with pytest.raises(DataValidationError, match=r"split 'train'.*lookback 90 \+ horizon 10 = 100 rows.*30 rows"):
        dm.setup()


def test_feature_subset() -> None:
    batch = next(iter(_dm(features=["close", "volume"]).train_dataloader()))
    assert batch["x"].shape[-1] == 2


def test_hydra_config_splits_are_accepted() -> None:
    from omegaconf import OmegaConf

    splits = OmegaConf.create({"train": ["2020-01-01", "2020-05-31"], "val": ["2020-06-01", "2020-07-31"],
                               "test": ["2020-08-01", None]})
    assert _dm(splits=splits).describe()["splits"]["train"]["end"].startswith("2020-05-31")


def test_lightning_fit_draws_new_windows_each_epoch() -> None:
    import lightning.pytorch as pl

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: dict[int, list[float]] = {}

        def training_step(self, batch: dict, _: int) -> torch.Tensor:
            self.seen.setdefault(self.current_epoch, []).append(float(batch["x"].sum()))
            return (self.w * batch["x"].mean()).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.0)

    model = Recorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=_dm(samples_per_epoch=16))
    assert len(model.seen[0]) == len(model.seen[1]) == 2
    assert model.seen[0] != model.seen[1]


def _member_dm(**kw) -> KronosDataModule:
    panel = SyntheticSource(n_instruments=3, n_steps=200, seed=2).load()
    member = [np.ones(200, bool) for _ in range(3)]
    member[0][40:90] = False  # left the universe for a while during the train split
    return KronosDataModule(PanelSource(Panel(panel.instruments, panel.timestamps, panel.values, member)),
                            L, H, batch_size=8, **kw)


def test_training_windows_only_where_the_instrument_is_a_member() -> None:
    dm = _member_dm()
    inst, off = dm.dataset("train").windows.materialize()
    decision_rows = dm.store.offsets[inst] + off + L - 1
    assert dm.store.member[decision_rows].all()
    everyone = _member_dm(train_members_only=False)
    assert len(everyone.dataset("train")) == len(dm.dataset("train")) + 50
    info, info_all = dm.describe(), everyone.describe()
    assert info["membership"] is True and info["train_members_only"] is True
    assert info["splits"]["train"]["windows"] == info["splits"]["train"]["eval_windows"]
    assert info_all["splits"]["train"]["windows"] == info_all["splits"]["train"]["eval_windows"] + 50


def test_describe_says_when_membership_is_unknown() -> None:
    info = _dm().describe()
    assert info["membership"] is False and info["store"] == {"kind": "ram", "path": None}


def test_ddp_rank_gets_its_own_shard_of_train_and_val() -> None:
    shards = []
    for rank in range(2):
        dm = _dm(batch_size=8, samples_per_epoch=40)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, accumulate_grad_batches=1)
        train = [float(x) for b in dm.train_dataloader() for x in b["x"].sum(dim=(1, 2))]
        val = [float(x) for b in dm.val_dataloader() for x in b["x"].sum(dim=(1, 2))]
        shards.append((train, val))
    assert len(shards[0][0]) == len(shards[1][0]) == 20 and not set(shards[0][0]) & set(shards[1][0])
    n_val = len(_dm().dataset("val"))
    assert len(shards[0][1]) + len(shards[1][1]) == n_val + n_val % 2
