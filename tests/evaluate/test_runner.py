"""``run_evaluate`` and origin selection on hand-built batches (no checkpoint needed)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from kronos.data.errors import DataValidationError
from kronos.data.features import lookback_stats, normalize
from kronos.evaluate.origins import collect_origins, exchange_group
from kronos.evaluate.runner import ModelForecaster, run_evaluate
from kronos.evaluate.settings import EvaluateConfigError, EvaluateSettings

L, H, F = 8, 3, 6
SETTINGS = dict(split="test", stride=1, baselines=["naive", "drift", "hist_vol"], models=[], kronos_data_end=None,
                sampling=dict(sample_count=8, T=1.0, top_k=0, top_p=1.0, seed=0), batch_size=5, max_context=512,
                device="cpu",
                coverage_levels=[0.5, 0.8, 0.9], quantile_levels=[0.1, 0.5, 0.9], pit_bins=5, group_by="exchange",
                tasks=[], task_options={"garch_refit_every": 10, "classifier_epochs": 5, "max_windows": 4000},
                task_sampling={task: {"T": 1.0, "top_k": 0, "top_p": 1.0, "sample_count": 4, "seed": 0}
                               for task in ("price", "return", "volatility", "generation")})


class FakeDataModule:
    """Eval batches of random-walk windows for two series on each of ``n_dates`` decision dates.

    Decision batches (kronos.data.eval_windows): lookback-only ``x``, ``stamp`` and ``close`` of L + H rows,
    ``y_stamp`` the horizon's stamps, ``raw`` the raw features of L + H rows; ``nan_future`` puts NaN closes
    (and raw rows) after the first future step for the last ``nan_future`` dates (``all_missing``: from the
    first future step on, as at the end of the data).
    """

    lookback, horizon, features = L, H, ("open", "high", "low", "close", "volume", "amount")

    def __init__(self, n_dates: int = 6, nan_future: int = 0,
                 instruments: tuple[str, ...] = ("SH600000", "SZ000001"), all_missing: bool = False) -> None:
        rng = np.random.default_rng(0)
        self.batches: list[dict[str, Any]] = []
        for d in range(n_dates):
            raw = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(len(instruments), L + H, F)), axis=1))
            raw = raw.astype(np.float32)
            close = raw[..., 3].copy()
            future = raw.copy()
            if d >= n_dates - nan_future:
                gone = L if all_missing else L + 1
                close[:, gone:] = np.nan
                future[:, gone:] = np.nan
            mean, std = lookback_stats(raw[:, :L])
            stamp = np.zeros((len(instruments), L + H, 5), dtype=np.int64)
            batch = {"x": torch.from_numpy(normalize(raw, mean, std)), "stamp": torch.from_numpy(stamp),
                     "instrument": list(instruments),
                     "datetime": torch.full((len(instruments),), np.datetime64(f"2025-01-{d + 1:02d}", "ns").astype(np.int64)),
                     "mean": torch.from_numpy(mean), "std": torch.from_numpy(std), "close": torch.from_numpy(close),
                     "raw": torch.from_numpy(future)}
            batch["y_stamp"] = batch["stamp"][:, L:]
            batch["x"] = batch["x"][:, :L]
            self.batches.append(batch)

    def eval_dataloader(self, split: str = "test", batch_size: int | None = None) -> list[dict[str, Any]]:
        return self.batches


class GaussianPredictor:
    """Normalised paths ~ N(0, 1): enough to exercise the runner."""

    device = "cpu"

    def __init__(self) -> None:
        self.calls = 0

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, generator=None, **_):
        self.calls += 1
        assert x.shape[1] == L and y_stamp.shape[1] == H
        return torch.randn(x.shape[0], sampling.sample_count, y_stamp.shape[1], F, generator=generator)


class BrokenPredictor(GaussianPredictor):
    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, **_):
        return torch.full((x.shape[0], sampling.sample_count, H, F), float("nan"))


def test_origins_keep_partly_missing_futures_and_count_them() -> None:
    dm = FakeDataModule(n_dates=6, nan_future=2)
    origins = collect_origins(dm, "test", stride=1, batch_size=16)
    # The last two dates' series stop after one future step: their origins stay, their missing steps count.
    assert len(origins) == 12 and origins.skipped["beyond_data"] == 0
    assert origins.missing == {"origins_with_missing_future": 4, "missing_future_steps": 4 * (H - 1)}
    assert origins.x_hist.shape == (12, L, F) and origins.y_stamp.shape == (12, H, 5)
    assert origins.future_raw.shape == (12, H, F) and np.isnan(origins.future_raw[-1, 1:]).all()
    strided = collect_origins(dm, "test", stride=2, batch_size=16)   # dates 0, 2, 4 kept
    assert sorted(set(strided.datetime.tolist())) == sorted(set(origins.datetime.tolist()))[::2]
    assert strided.missing["origins_with_missing_future"] == 2


def test_dates_after_the_end_of_the_data_are_skipped() -> None:
    origins = collect_origins(FakeDataModule(n_dates=4, nan_future=1, all_missing=True), "test", stride=1,
                              batch_size=16)
    assert len(origins) == 6 and origins.skipped["beyond_data"] == 2
    with pytest.raises(DataValidationError, match="no evaluation origin with a realised future"):
        collect_origins(FakeDataModule(n_dates=2, nan_future=2, all_missing=True), "test", stride=1, batch_size=16)


def test_missing_future_steps_are_left_out_of_the_scores(tmp_path: Path) -> None:
    metrics = run_evaluate([ModelForecaster("kronos", GaussianPredictor())], FakeDataModule(nan_future=2),
                           EvaluateSettings.from_config(SETTINGS), tmp_path / "evaluate")
    assert metrics["origins"] == 12 and metrics["missing"]["missing_future_steps"] == 8
    row = metrics["models"]["hist_vol"]
    assert row["crps"] is not None and 0.0 <= row["coverage"]["0.9"] <= 1.0
    # Step 1 exists for every origin, steps 2..H for 8 of 12: per-step scores average what exists.
    assert all(v is not None for v in row["per_horizon"]["crps"])
    assert "kronos" in metrics["tasks"]["accuracy"]["verdict"]


def test_the_older_batch_layout_is_refused_by_name() -> None:
    """x over L + H rows without y_stamp (no longer produced) is named, not silently misread."""
    dm = FakeDataModule(n_dates=2)
    for batch in dm.batches:
        del batch["y_stamp"]
    with pytest.raises(ValueError, match=r"decision batch lacks \['y_stamp'\]"):
        collect_origins(dm, "test", stride=1, batch_size=16)


def test_origins_as_batches_round_trip() -> None:
    """Origins.batches gives back the decision layout the origins were read from."""
    origins = collect_origins(FakeDataModule(n_dates=3), "test", stride=1, batch_size=16)
    parts = list(origins.batches(4))
    assert [len(b["instrument"]) for b in parts] == [4, 2]
    first = parts[0]
    assert first["x"].shape == (4, L, F) and first["stamp"].shape == (4, L + H, 5) and first["close"].shape == (4, L + H)
    np.testing.assert_array_equal(first["close"][:, L:].numpy(), origins.future_close[:4])
    np.testing.assert_array_equal(first["y_stamp"].numpy(), first["stamp"][:, L:].numpy())


def test_run_evaluate_groups_by_exchange_and_reports(tmp_path: Path) -> None:
    settings = EvaluateSettings.from_config(SETTINGS)
    predictor = GaussianPredictor()
    source = {"T": 1.0, "top_p": 1.0, "from": {"T": "config", "top_p": "config"}}
    metrics = run_evaluate([ModelForecaster("kronos", predictor, {}, data_end="2025-01-02")], FakeDataModule(),
                           settings, tmp_path / "evaluate", sampling_source=source)
    assert predictor.calls == 3                               # 12 origins in batches of 5
    assert metrics["origins"] == 12 and set(metrics["groups"]) == {"SH", "SZ"}
    assert metrics["groups"]["SH"]["origins"] == 6
    assert set(metrics["groups"]["SZ"]["models"]) == {"kronos", "naive", "drift", "hist_vol"}
    # Origins on 2025-01-01 and 01-02 are inside the model's training data: 4 of 12 flagged.
    assert len(metrics["warnings"]) == 1 and "4 of 12 origins" in metrics["warnings"][0]
    written = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert written["models"]["hist_vol"]["pit_histogram"] is not None and len(written["models"]["hist_vol"]["pit_histogram"]) == 5
    assert written["models"]["naive"]["pit_histogram"] is None
    assert written["sampling_source"] == source                   # which T was used and where it came from
    # N(0, 1) features drawn independently: highs below the body; repaired and counted
    repairs = written["candle_repairs"]
    assert repairs["candles"] == repairs["by_model"]["kronos"]["candles"] == 12 * settings.sampling.sample_count * H
    assert repairs["wick"] > 0 and 0 < repairs["share"]["wick"] <= 1


def test_a_failing_model_leaves_the_previous_report(tmp_path: Path) -> None:
    out = tmp_path / "evaluate"
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}')
    with pytest.raises(ValueError, match="not finite"):
        run_evaluate([ModelForecaster("kronos", BrokenPredictor())], FakeDataModule(),
                     EvaluateSettings.from_config(SETTINGS), out)
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}


@pytest.mark.parametrize("change, message", [
    ({"baselines": ["naive", "arima"]}, "unknown \\['arima'\\]"),
    ({"baselines": ["drift"]}, "must include naive"),
    ({"stride": 0}, "evaluate.stride=0"),
    ({"sampling": {**SETTINGS["sampling"], "sample_count": 1}}, "at least 2"),
    ({"sampling": {**SETTINGS["sampling"], "T": 0}}, "evaluate.sampling.T must be between"),
    ({"T": 1.0}, "evaluate.T moved into the evaluate.sampling block: write evaluate.T -> evaluate.sampling.T"),
    ({"coverage_levels": [0.5, 0.9]}, "coverage_levels"),
    ({"models": [{"name": "naive", "tokenizer": "a", "predictor": "b"}]}, "already used"),
    ({"models": [{"name": "x", "tokenizer": "a"}]}, "lacks \\['predictor'\\]"),
    ({"models": [{"name": "x", "tokenizer": "a", "predictor": "b", "data_end": "mid 2024"}]}, "not a date"),
    ({"tasks": ["price", "sharpe"]}, "evaluate.tasks: unknown \\['sharpe'\\]"),
    ({"task_sampling": {**SETTINGS["task_sampling"], "price": {"T": 0, "top_k": 0, "top_p": 0.9, "sample_count": 10,
                                                               "seed": 0}}}, "evaluate.task_sampling.price.T must"),
    ({"task_sampling": {**SETTINGS["task_sampling"], "return": {"T": 0.6}}}, "evaluate.task_sampling.return must set"),
    ({"task_options": {"garch_refit_every": 0, "classifier_epochs": 5, "max_windows": 100}},
     "evaluate.task_options.garch_refit_every=0"),
])
def test_bad_settings_are_named(change: dict, message: str) -> None:
    with pytest.raises(EvaluateConfigError, match=message):
        EvaluateSettings.from_config({**SETTINGS, **change})


@pytest.mark.parametrize("name, group", [("SH600000", "SH"), ("sz000001", "SZ"), ("600000.SH", "SH"),
                                         ("NASDAQ:AAPL", "NASDAQ"), ("BTCUSDT", "other"), ("series_0", "other")])
def test_exchange_group_rule(name: str, group: str) -> None:
    assert exchange_group(name) == group


def test_the_same_paths_fetched_twice_count_their_candle_repairs_once(monkeypatch) -> None:
    """The accuracy scores and a task with the same sampling read the same paths: one count, not two."""
    import kronos.evaluate.runner as runner_mod
    from kronos.inference.candles import CandleRepairs
    from kronos.inference.settings import SamplingSettings

    def fake_paths(model, origins, sampling, batch_size, repairs=None):
        if repairs is not None:
            repairs[model.name] = repairs.get(model.name, CandleRepairs()) + CandleRepairs(candles=10, wick=1)
        return np.zeros((1, sampling.sample_count, 2, 6), np.float32)

    monkeypatch.setattr(runner_mod, "model_paths", fake_paths)
    paths = runner_mod.StoredPaths(datamodule=None, origins=[0], settings=SimpleNamespace(batch_size=8))
    model = runner_mod.ModelForecaster("kronos", predictor=None)
    first, other = SamplingSettings(T=1.0, top_k=0, top_p=1.0, sample_count=4, seed=0), \
        SamplingSettings(T=0.9, top_k=0, top_p=1.0, sample_count=4, seed=0)
    paths(model, first)
    paths(model, first)
    assert paths.repairs["kronos"] == CandleRepairs(candles=10, wick=1)
    paths(model, other)
    assert paths.repairs["kronos"] == CandleRepairs(candles=20, wick=2)
