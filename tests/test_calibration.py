"""Calibration: the temperature is chosen on validation windows only, recorded, and used where T is unset."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.calibration import CalibrationConfigError, CalibrationSettings, calibrate, calibrate_export, coverage_error
from kronos.data.datamodule import KronosDataModule
from kronos.data.synthetic import SyntheticSource
from kronos.inference.loading import load_predictor
from kronos.inference.predictor import sampling_of
from kronos.inference.settings import SamplingSettings, calibration_of
from kronos.stages.calibrate import calibrated_sampling
from kronos.training_info import TrainingInfo

SETTINGS = CalibrationSettings(grid=(0.5, 2.0, 4.0), spreads=(1.0,), sample_count=8, windows=40, batch_size=16,
                               seed=3)


class SpreadForecaster:
    """Normalised paths: the last normalised close plus N(0, (0.05 T)^2) per step (too narrow at T 1: the
    best temperature is above 1). Records the temperatures it was asked for."""

    device = "cpu"

    def __init__(self) -> None:
        self.temperatures: list[float] = []

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, generator=None):
        self.temperatures.append(sampling.T)
        B, H, F = x.shape[0], y_stamp.shape[1], x.shape[2]
        noise = torch.randn(B, sampling.sample_count, H, F, generator=generator) * 0.05 * sampling.T
        return x[:, None, -1:, :] + noise.cumsum(dim=2)


class SplitSpy(KronosDataModule):
    """Records which splits' decision windows were read."""

    def eval_dataloader(self, split: str = "test", batch_size: int | None = None):
        self.read.append(split)
        return super().eval_dataloader(split, batch_size)


@pytest.fixture(scope="module")
def datamodule() -> SplitSpy:
    source = SyntheticSource(n_instruments=6, n_steps=300, seed=2)
    dm = SplitSpy(source, lookback=30, horizon=3, splits={"train": 0.6, "val": 0.2, "test": 0.2}, batch_size=8,
                  seed=0)
    dm.read = []
    dm.setup("fit")
    return dm


def test_the_chosen_temperature_is_recorded_with_the_export(datamodule: SplitSpy, tmp_path: Path) -> None:
    TrainingInfo(stage="predictor", global_step=7).write(tmp_path)
    forecaster = SpreadForecaster()
    datamodule.read.clear()
    result = calibrate_export(forecaster, datamodule, tmp_path, SETTINGS)
    assert set(datamodule.read) == {"val"}                                  # never the test split
    assert sorted(set(forecaster.temperatures)) == [0.5, 1.0, 2.0, 4.0]     # the grid plus T 1 (the "before")
    rows = {row["T"]: row for row in result.grid}
    assert result.criterion == "coverage"
    assert result.T == min(rows, key=lambda t: coverage_error(rows[t])) and result.T > 1.0
    assert result.before == rows[1.0] and result.after == rows[result.T]
    # too narrow at T 1: the 90 % interval covers less than after calibration
    assert result.before["coverage"]["0.9"] < result.after["coverage"]["0.9"]
    assert 0 < result.windows <= SETTINGS.windows and result.split == "val"
    info = TrainingInfo.read(tmp_path)
    assert info.global_step == 7 and info.calibrated() == result                # the rest of the record kept
    assert json.loads((tmp_path / "training_info.json").read_text())["calibration"]["T"] == result.T


def test_each_criterion_picks_its_own_best_temperature(datamodule: SplitSpy, monkeypatch) -> None:
    """Sharper T lowers CRPS while it under-covers: scaled_crps keeps T 0.8, coverage the T nearest nominal."""
    import kronos.calibration as calibration

    table = {0.8: (0.70, (0.40, 0.70, 0.80)), 1.0: (0.72, (0.46, 0.76, 0.86)), 1.2: (0.74, (0.50, 0.79, 0.89)),
             1.5: (0.78, (0.58, 0.86, 0.95))}
    monkeypatch.setattr(calibration, "score_temperature", lambda predictor, origins, T, settings: [{
        "T": T, "spread": 1.0, "scaled_crps": table[T][0], "coverage": dict(zip(("0.5", "0.8", "0.9"), table[T][1])),
        "pit_histogram": []}])
    picked = {c: calibrate(None, datamodule, dataclasses.replace(SETTINGS, grid=(0.8, 1.2, 1.5), criterion=c)).T
              for c in ("coverage", "scaled_crps")}
    assert picked == {"coverage": 1.2, "scaled_crps": 0.8}
    # two candidates within the tolerance: the sharper (lower CRPS) one, though the other covers closer
    table[1.0] = (0.72, (0.49, 0.785, 0.885))                               # within 0.015 of nominal
    assert calibrate(None, datamodule, dataclasses.replace(SETTINGS, grid=(0.8, 1.2, 1.5))).T == 1.0
    # a tighter tolerance leaves only T 1.2 (within 0.01); none within: the closest coverage
    assert calibrate(None, datamodule, dataclasses.replace(SETTINGS, grid=(0.8, 1.2, 1.5), coverage_tolerance=0.01)).T == 1.2
    # none within (tolerance 0; T 1 is always scored): the closest, T 1 at 0.015, not the sharper T 0.8
    assert calibrate(None, datamodule, dataclasses.replace(SETTINGS, grid=(0.8, 1.5), coverage_tolerance=0.0)).T == 1.0
    assert coverage_error({"coverage": {"0.5": 0.5, "0.8": 0.75, "0.9": 0.91}}) == pytest.approx(0.05)
    with pytest.raises(CalibrationConfigError, match="criterion"):
        CalibrationSettings(criterion="pinball")


def test_settings_are_checked_by_name() -> None:
    with pytest.raises(CalibrationConfigError, match="unknown calibration setting"):
        CalibrationSettings.from_config({"grd": [1.0]})
    with pytest.raises(CalibrationConfigError, match="calibration.grid"):
        CalibrationSettings.from_config({"grid": [0.0]})
    with pytest.raises(CalibrationConfigError, match="calibration.spreads"):
        CalibrationSettings.from_config({"spreads": [5.0]})
    with pytest.raises(CalibrationConfigError, match="coverage_tolerance"):
        CalibrationSettings.from_config({"coverage_tolerance": 0.7})
    assert CalibrationSettings.from_config(None) == CalibrationSettings()


@pytest.fixture()
def calibrated_pair(tiny_pair: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    tok, pred = tiny_pair
    copy = tmp_path / "predictor"
    shutil.copytree(pred, copy)
    TrainingInfo(stage="predictor").write(copy)
    calibrate_export(SpreadForecaster(), _small_datamodule(), copy, SETTINGS)
    return tok, copy


def _small_datamodule() -> KronosDataModule:
    dm = KronosDataModule(SyntheticSource(n_instruments=4, n_steps=200, seed=5), lookback=20, horizon=2,
                          splits={"train": 0.6, "val": 0.2, "test": 0.2}, batch_size=8, seed=0)
    dm.setup("fit")
    return dm


def test_stages_use_the_calibrated_temperature_unless_set(calibrated_pair: tuple[Path, Path]) -> None:
    _, pred = calibrated_pair
    chosen = calibration_of(pred)
    default = SamplingSettings(T=1.0, top_p=1.0, sample_count=20, seed=0)
    used, source = calibrated_sampling(default, {"T": None, "top_p": None}, str(pred))
    assert (used.T, used.top_p) == (chosen.T, chosen.top_p) and "calibration" in source["from"]["T"]
    assert source["validation"]["after"]["T"] == chosen.T
    # the stage's settings already hold the explicit T (the config's value); the block says it was set
    explicit, source = calibrated_sampling(dataclasses.replace(default, T=0.7), {"T": 0.7, "top_p": None}, str(pred))
    assert explicit.T == 0.7 and source["from"]["T"] == "config" and "calibration" in source["from"]["top_p"]
    # no calibration recorded (a published or older export): the stage's own default, said so
    plain, source = calibrated_sampling(default, {"T": None, "top_p": None}, None)
    assert plain == default and source["from"]["T"].startswith("default") and "validation" not in source


def test_predictor_api_and_cli_use_the_calibration(calibrated_pair: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tok, pred = calibrated_pair
    predictor = load_predictor(str(tok), str(pred), device="cpu")
    chosen = predictor.calibration
    assert chosen is not None and chosen == calibration_of(pred)
    assert sampling_of(None, None, 0, None, 1, chosen).T == chosen.T
    assert sampling_of(None, 0.3, 0, None, 1, chosen).T == 0.3                  # an explicit T wins
    assert sampling_of(None, None, 0, None, 1, None) == SamplingSettings(T=1.0, top_p=0.9)  # the reference's
    from kronos.cli.predict import main

    rows = 40
    close = 20 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, rows)))
    lines = ["timestamps,open,high,low,close,volume"] + [
        f"2024-01-{1 + i // 20:02d} {9 + (i % 20) // 4:02d}:{(i % 4) * 15:02d},{c},{c * 1.01},{c * 0.99},{c},1000"
        for i, c in enumerate(close)]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    args = ["--model", str(pred), "--tokenizer", str(tok), "--device", "cpu", "--csv", str(tmp_path / "in.csv"),
            "--lookback", "30", "--pred-len", "2", "--seed", "0", "--out", str(tmp_path / "out.csv")]
    assert main(args) == 0
    assert f"sampled at T {chosen.T:g}" in capsys.readouterr().err
    assert main([*args, "--T", "0.7"]) == 0
    assert "sampled at T 0.7," in capsys.readouterr().err


def test_a_temperature_on_the_grids_edge_is_warned_about(datamodule: SplitSpy, tmp_path: Path, monkeypatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    import kronos.calibration as calibration

    monkeypatch.setattr(calibration, "score_temperature", lambda predictor, origins, T, settings: [{
        "T": T, "spread": 1.0, "scaled_crps": 1.0 / T,
        "coverage": {f"{lv:g}": min(lv * T / 2.0, 0.999) for lv in (0.5, 0.8, 0.9)},
        "pit_histogram": []}])  # nominal coverage at T 2, under below it, over above it
    TrainingInfo(stage="predictor").write(tmp_path)
    with caplog.at_level("WARNING", logger="kronos.calibration"):
        result = calibrate_export(None, datamodule, tmp_path, dataclasses.replace(SETTINGS, grid=(0.5, 2.0)))
    assert result.T == 2.0 and "edge of calibration.grid" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="kronos.calibration"):
        result = calibrate_export(None, datamodule, tmp_path, dataclasses.replace(SETTINGS, grid=(0.5, 2.0, 4.0)))
    assert result.T == 2.0 and "edge" not in caplog.text


def test_a_spread_is_chosen_with_the_temperature_and_used_with_a_calibrated_t(datamodule: SplitSpy, tmp_path: Path,
                                                                             tiny_pair: tuple[Path, Path]) -> None:
    """Paths too narrow at every T of the grid: only the spread can bring the intervals to nominal."""
    TrainingInfo(stage="predictor").write(tmp_path)
    settings = dataclasses.replace(SETTINGS, grid=(1.0,), spreads=(0.5, 2.0, 4.0))
    forecaster = SpreadForecaster()
    result = calibrate_export(forecaster, datamodule, tmp_path, settings)
    assert sorted(set(forecaster.temperatures)) == [1.0]                   # one forecast per T, every spread on it
    rows = {row["spread"]: row for row in result.grid}
    assert sorted(rows) == [0.5, 1.0, 2.0, 4.0] and {row["T"] for row in result.grid} == {1.0}
    within = [k for k in rows if coverage_error(rows[k]) <= settings.coverage_tolerance]
    assert result.spread == (min(within, key=lambda k: rows[k]["scaled_crps"]) if within
                             else min(rows, key=lambda k: coverage_error(rows[k])))
    assert result.spread > 1.0
    assert result.before == rows[1.0] and result.after == rows[result.spread]
    assert coverage_error(result.after) < coverage_error(result.before)
    assert rows[0.5]["coverage"]["0.9"] < rows[1.0]["coverage"]["0.9"] < rows[2.0]["coverage"]["0.9"]
    chosen = calibration_of(tmp_path)
    assert chosen.spread == result.spread
    # a stage whose block leaves spread null takes it; the predictor API takes it with a calibrated T only
    default = SamplingSettings(T=1.0, top_p=1.0, sample_count=20, seed=0)
    used, source = calibrated_sampling(default, {"T": None, "top_p": None, "spread": None}, str(tmp_path))
    assert used.spread == result.spread and "calibration" in source["from"]["spread"] and source["spread"] == used.spread
    kept, _ = calibrated_sampling(default, {"T": None, "top_p": None}, str(tmp_path))  # absent: the default, 1
    assert kept.spread == 1.0
    assert sampling_of(None, None, 0, None, 1, chosen).spread == result.spread
    assert sampling_of(None, 0.7, 0, None, 1, chosen).spread == 1.0
    # ... and the paths a predictor returns fan out by it around the last close
    tok, pred = tiny_pair
    predictor = load_predictor(str(tok), str(pred), device="cpu")
    rng = np.random.default_rng(1)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 40)))
    frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                          "volume": 1000.0, "amount": 1000.0 * close})
    stamps = pd.Series(pd.date_range("2024-01-01", periods=40, freq="D"))
    future = pd.Series(pd.date_range("2024-02-10", periods=3, freq="D"))
    plain = predictor.predict_samples(frame, stamps, future, pred_len=3, verbose=False,
                                      sampling=SamplingSettings(T=1.0, sample_count=4, seed=5)).paths
    wide = predictor.predict_samples(frame, stamps, future, pred_len=3, verbose=False,
                                     sampling=SamplingSettings(T=1.0, sample_count=4, seed=5, spread=2.0)).paths
    prices = slice(0, 4)  # open, high, low, close; volume and amount as decoded
    np.testing.assert_allclose(np.log(wide[..., prices] / close[-1]), 2.0 * np.log(plain[..., prices] / close[-1]),
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(wide[..., 4:], plain[..., 4:])
