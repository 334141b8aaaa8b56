"""Candle validity: the repair rule of kronos.inference.candles, its counts, and every entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kronos import Kronos, KronosPredictor, KronosTokenizer
from kronos.cli.predict import main as predict_main
from kronos.data.datamodule import KronosDataModule
from kronos.data.features import FEATURES
from kronos.data.synthetic import SyntheticSource
from kronos.inference.candles import REPAIR_FIELDS, CandleRepairs, candle_paths, repair_candles, scale_spread
from kronos.inference.decisions import collect_decision_forecasts
from kronos.inference.frame import forecast_frame, plan_forecast
from kronos.inference.generate import generate
from kronos.inference.settings import SamplingSettings

from .conftest import TINY_PREDICTOR, TINY_TOKENIZER, future_timestamps, make_series

SAMPLING = SamplingSettings(T=1.0, top_p=1.0, sample_count=8, seed=0)


def assert_possible(paths: np.ndarray, features=FEATURES) -> None:
    """Every candle of ``paths`` [..., F] is possible: prices > 0, low <= body <= high, volume/amount >= 0."""
    col = {f: paths[..., i] for i, f in enumerate(features)}
    assert np.isfinite(paths).all()
    for price in ("open", "high", "low", "close"):
        assert (col[price] > 0).all(), price
    assert (col["low"] <= np.minimum(col["open"], col["close"])).all()
    assert (np.maximum(col["open"], col["close"]) <= col["high"]).all()
    assert (col["volume"] >= 0).all() and (col["amount"] >= 0).all()


def test_each_defect_is_repaired_by_its_rule_and_counted() -> None:
    path = np.array([
        [10.0, 11.0, 9.0, 10.5, 100.0, 1000.0],   # valid: unchanged
        [10.5, 10.0, 11.0, -1.0, -5.0, 3.0],      # close <= 0 -> flat at 10.5; volume < 0 -> 0
        [-2.0, 5.0, 4.0, 5.0, 1.0, -1.0],         # open <= 0 -> flat at the previous valid close (still 10.5)
        [10.0, 10.2, -3.0, 9.8, 1.0, 1.0],        # only the low <= 0: cut to the body, close kept
        [9.0, 8.0, 10.0, 9.5, 1.0, 1.0],          # high below the body and low above it: widened
    ], dtype=np.float32)
    repaired, counts = repair_candles(path, last_close=10.0)
    np.testing.assert_array_equal(repaired[0], path[0])
    np.testing.assert_array_equal(repaired[1], [10.5, 10.5, 10.5, 10.5, 0.0, 3.0])
    np.testing.assert_array_equal(repaired[2], [10.5, 10.5, 10.5, 10.5, 1.0, 0.0])
    np.testing.assert_allclose(repaired[3], [10.0, 10.2, 9.8, 9.8, 1.0, 1.0])
    np.testing.assert_array_equal(repaired[4], [9.0, 9.5, 9.0, 9.5, 1.0, 1.0])
    assert CandleRepairs.from_array(counts) == CandleRepairs(candles=5, nonpositive_price=3, negative_volume=1,
                                                              negative_amount=1, wick=1)
    assert_possible(repaired)


def test_a_bad_first_candle_takes_the_last_observed_close_and_paths_are_independent() -> None:
    paths = np.array([[[0.0, 1.0, 1.0, -4.0, 1.0, 1.0]], [[5.0, 6.0, 4.0, 5.5, 1.0, 1.0]]], dtype=np.float32)
    repaired, counts = repair_candles(paths, last_close=np.array([7.0, 3.0]))
    np.testing.assert_array_equal(repaired[0, 0, :4], [7.0] * 4)
    np.testing.assert_array_equal(repaired[1], paths[1])
    assert counts.tolist() == [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]]


def test_features_in_another_order_and_without_volume_are_read_by_name() -> None:
    features = ("close", "low", "high", "open")
    path = np.array([[10.0, 11.0, 9.0, 10.0]], dtype=np.float32)  # low above and high below the body
    repaired, counts = repair_candles(path, 10.0, features)
    np.testing.assert_array_equal(repaired, [[10.0, 10.0, 10.0, 10.0]])
    assert counts.tolist() == [1, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="close column"):
        repair_candles(path, 10.0, ("open", "high", "low", "volume"))


def test_non_finite_values_are_left_for_the_callers_checks() -> None:
    path = np.array([[np.nan, 1.0, 1.0, np.nan, np.nan, 1.0]], dtype=np.float32)
    repaired, counts = repair_candles(path, 2.0)
    assert np.isnan(repaired[0, [0, 3, 4]]).all() and counts.tolist() == [1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="positive"):
        repair_candles(path, 0.0)


def test_counts_add_up_and_report_shares() -> None:
    a = CandleRepairs(candles=10, nonpositive_price=1, wick=2)
    total = a + CandleRepairs(candles=30, negative_volume=4)
    assert total.as_dict() == {"candles": 40, "nonpositive_price": 1, "negative_volume": 4, "negative_amount": 0,
                               "wick": 2}
    report = total.report()
    assert report["share"]["negative_volume"] == pytest.approx(0.1) and report["candles"] == 40
    assert CandleRepairs().shares()["wick"] is None
    assert set(total.as_dict()) == set(REPAIR_FIELDS)
    assert "4 negative volume" in total.summary()


def test_candle_paths_is_denormalize_then_repair() -> None:
    z = np.random.default_rng(0).normal(0, 3, size=(2, 4, 5, 6)).astype(np.float32)
    mean, std = np.full((2, 1, 6), 10.0, np.float32), np.full((2, 1, 6), 4.0, np.float32)
    paths, counts = candle_paths(z, mean, std, np.array([[10.0], [12.0]]))
    assert paths.shape == z.shape and counts.shape == (2, 4, len(REPAIR_FIELDS))
    summed = CandleRepairs.from_array(counts)
    assert summed.candles == 40 and summed.nonpositive_price > 0 and summed.wick > 0 and summed.negative_volume > 0
    assert_possible(paths)


def test_a_spread_fans_the_paths_out_around_the_last_close_and_keeps_candles_possible() -> None:
    z = np.random.default_rng(1).normal(0, 3, size=(2, 4, 5, 6)).astype(np.float32)
    mean, std = np.full((2, 1, 6), 10.0, np.float32), np.full((2, 1, 6), 4.0, np.float32)
    last = np.array([[10.0], [12.0]])
    plain, counts = candle_paths(z, mean, std, last)
    assert scale_spread(plain, last, 1.0) is plain                                   # 1: the paths as decoded
    for spread in (0.5, 1.7):
        wide, wide_counts = candle_paths(z, mean, std, last, spread=spread)
        np.testing.assert_array_equal(wide_counts, counts)                            # repairs come first, unchanged
        assert_possible(wide)
        anchor = last[:, :, None, None]
        np.testing.assert_allclose(np.log(wide[..., :4] / anchor), spread * np.log(plain[..., :4] / anchor),
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(wide[..., 4:], plain[..., 4:])                  # volume, amount untouched
    with pytest.raises(ValueError, match="spread must be positive"):
        scale_spread(plain, last, 0.0)
    with pytest.raises(Exception, match="spread must be between"):
        SamplingSettings(spread=5.0).validate()


# ---------------------------------------------------------------- every entry point, a deliberately bad model


@pytest.fixture(scope="module")
def bad_models() -> tuple[Kronos, KronosTokenizer]:
    """Random weights whose decoder spreads candles over +-tens of standard deviations around a price level
    about 30 standard deviations below the lookback mean: every kind of impossible candle comes out."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, tokenizer = Kronos(**TINY_PREDICTOR), KronosTokenizer(**TINY_TOKENIZER)
    with torch.no_grad():
        tokenizer.head.weight.mul_(30.0)
        tokenizer.head.bias[:4] = -30.0
    return model, tokenizer


@pytest.fixture(scope="module")
def bad_predictor(bad_models) -> KronosPredictor:
    return KronosPredictor(*bad_models, device="cpu", max_context=64)


def _defects_everywhere(repairs: CandleRepairs) -> None:
    """The model is really bad: otherwise a test that its output is possible asserts nothing."""
    assert repairs.nonpositive_price > 0 and repairs.wick > 0 and repairs.negative_volume > 0, repairs


def test_predictor_api_returns_possible_candles(bad_predictor: KronosPredictor) -> None:
    df, ts = make_series(48, 0)
    y = future_timestamps(ts, 12)
    samples = bad_predictor.predict_samples(df, ts, y, 12, sampling=SAMPLING)
    _defects_everywhere(samples.repairs)
    assert samples.repairs.candles == 8 * 12
    assert_possible(samples.paths)
    mean = bad_predictor.predict(df, ts, y, 12, sampling=SAMPLING)
    assert_possible(mean.to_numpy())
    assert mean.attrs["candle_repairs"] == samples.repairs.as_dict()
    other, other_ts = make_series(40, 1)
    batch = bad_predictor.predict_batch_samples([df, other], [ts, other_ts], [y, future_timestamps(other_ts, 12)], 12,
                                                sampling=SAMPLING)
    for s in batch:
        assert_possible(s.paths)
    frames = generate(bad_predictor, df, ts, pred_len=6, sampling=SamplingSettings(sample_count=4, seed=1))
    assert_possible(np.stack([f[list(FEATURES)].to_numpy() for f in frames]))


def test_frame_forecast_returns_possible_candles_and_counts(bad_predictor: KronosPredictor) -> None:
    df, ts = make_series(60, 0)
    frame = pd.concat([ts, df], axis=1)
    window = plan_forecast(frame, 0, 48, 12, SAMPLING, max_context=64)
    result = forecast_frame(bad_predictor, window, 12, SAMPLING)
    assert_possible(result.paths)
    _defects_everywhere(result.repairs)


def test_decision_forecasts_return_possible_candles_and_per_window_counts(bad_predictor: KronosPredictor) -> None:
    source = SyntheticSource(n_instruments=3, n_steps=120, seed=1)
    dm = KronosDataModule(source, lookback=24, horizon=4, splits={"train": 0.6, "val": 0.1, "test": 0.3},
                          batch_size=8, seed=0)
    dm.setup("fit")
    forecast = collect_decision_forecasts(bad_predictor, dm.eval_dataloader("test", batch_size=16), SAMPLING,
                                          dm.features)
    assert forecast.repairs.shape == (len(forecast), len(REPAIR_FIELDS))
    assert (forecast.repairs[:, 0] == SAMPLING.sample_count * 4).all()
    _defects_everywhere(forecast.candle_repairs())
    assert_possible(forecast.paths, dm.features)


def test_cli_summary_counts_the_repairs(bad_models, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, tokenizer = bad_models
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    model.save_pretrained(tmp_path / "predictor")
    df, ts = make_series(60, 3)
    pd.concat([ts, df], axis=1).to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "gen.csv"
    args = ["--model", str(tmp_path / "predictor"), "--tokenizer", str(tmp_path / "tokenizer"), "--device", "cpu",
            "--csv", str(tmp_path / "in.csv"), "--lookback", "48", "--pred-len", "5", "--seed", "0"]
    assert predict_main([*args, "--generate", "6", "--out", str(out)]) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if "candle repairs" in x)
    assert "(of 30 candles)" in line and " 0 non-positive price" not in line
    table = pd.read_csv(out)
    assert_possible(table[list(FEATURES)].to_numpy())
