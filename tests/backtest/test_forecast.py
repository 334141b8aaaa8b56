"""forecast_split on a real synthetic datamodule with a fake predictor."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from kronos.backtest.forecast import forecast_split
from kronos.data.features import time_features
from kronos.inference.settings import SamplingSettings
from tests.backtest.conftest import HORIZON, LOOKBACK, PersistenceFake

SETTINGS = dict(sampling=SamplingSettings(sample_count=4, T=0.6, top_k=0, top_p=0.9, seed=0))


@pytest.fixture(scope="module")
def run(datamodule):
    fake = PersistenceFake()
    return fake, forecast_split(fake, datamodule, batch_size=100, progress=False, **SETTINGS)


def test_every_test_window_once_in_large_batches(run, datamodule) -> None:
    fake, frame = run
    assert not {"next_return", "horizon_return", "trade_return"} & set(frame)  # labels never pass through here
    n = len(datamodule.eval_dataloader("test").dataset)
    assert len(frame) == n
    assert not frame.duplicated(["datetime", "instrument"]).any()
    assert len(fake.calls) == math.ceil(n / 100)
    test_start = pd.Timestamp(datamodule.describe()["splits"]["test"]["start"])
    assert frame["datetime"].min() >= test_start
    assert frame["datetime"].is_monotonic_increasing


def test_predictor_sees_history_only_and_future_stamps(run, datamodule) -> None:
    fake, frame = run
    call = fake.calls[0]
    assert call["x"][1] == LOOKBACK and call["x_stamp"][1] == LOOKBACK
    assert call["y_stamp"].shape[1] == HORIZON
    assert call["sampling"] == SETTINGS["sampling"] and isinstance(call["generator"], torch.Generator)
    # The first window's future stamps are the calendar fields of the H rows after its decision date.
    row = frame.iloc[0]
    stamps = pd.DatetimeIndex(datamodule.panel.frame(row["instrument"]).index)
    at = stamps.get_loc(row["datetime"])
    expected = time_features(stamps[at + 1: at + 1 + HORIZON])
    first = fake.calls[0]["y_stamp"][0].numpy()
    assert np.array_equal(first, expected)


def test_denormalised_sample_mean_and_past_return(run, datamodule) -> None:
    _, frame = run
    preds = frame[[f"pred_close_{h}" for h in range(1, HORIZON + 1)]].to_numpy()
    # The fake's sample mean is the last normalised row: de-normalised, the last close.
    np.testing.assert_allclose(preds, np.repeat(frame[["last_close"]].to_numpy(), HORIZON, axis=1), rtol=1e-5)
    for _, row in frame.sample(20, random_state=0).iterrows():
        close = datamodule.panel.frame(row["instrument"])["close"].astype(np.float64)
        at = close.index.get_loc(row["datetime"])
        assert row["last_close"] == pytest.approx(close.iloc[at], rel=1e-6)
        assert row["past_return"] == pytest.approx(close.iloc[at] / close.iloc[at - HORIZON] - 1, rel=1e-5, abs=1e-9)


def test_start_end_keep_only_those_decision_dates(run, datamodule) -> None:
    _, full = run
    dates = full["datetime"].drop_duplicates().sort_values()
    start, end = dates.iloc[3], dates.iloc[6]
    part = forecast_split(PersistenceFake(), datamodule, batch_size=64, start=start, end=end, progress=False, **SETTINGS)
    assert sorted(part["datetime"].unique()) == list(dates.iloc[3:7])
    pd.testing.assert_frame_equal(part, full[(full["datetime"] >= start) & (full["datetime"] <= end)].reset_index(drop=True))


def test_a_date_range_is_what_the_loader_and_the_progress_line_count(run, datamodule, monkeypatch) -> None:
    import io

    from kronos.backtest import forecast as forecast_module

    _, full = run
    dates = full["datetime"].drop_duplicates().sort_values()
    start, end = dates.iloc[2], dates.iloc[4]
    loader = datamodule.eval_dataloader("test", batch_size=5, start=start, end=end)
    expected = int(((full["datetime"] >= start) & (full["datetime"] <= end)).sum())
    assert len(loader.dataset) == expected
    stamps = np.concatenate([np.asarray(b["datetime"], dtype=np.int64) for b in loader])
    assert stamps.min() == start.value and stamps.max() == end.value
    lines = io.StringIO()
    original = forecast_module.ProgressLine
    monkeypatch.setattr(forecast_module, "ProgressLine",
                        lambda total, label, enabled=True: original(total, label, stream=lines))
    forecast_split(PersistenceFake(), datamodule, batch_size=5, start=start, end=end, **SETTINGS)
    assert f"{expected}/{expected} windows (100 %)" in lines.getvalue()  # never the whole split's count


def test_wrong_predictor_output_shape_is_named(datamodule) -> None:
    class Wrong(PersistenceFake):
        def forecast_normalized(self, *args, **kwargs):
            return super().forecast_normalized(*args, **kwargs)[:, :, :1]

    with pytest.raises(ValueError, match=r"forecast_normalized returned shape"):
        forecast_split(Wrong(), datamodule, batch_size=64, progress=False, **SETTINGS)


def test_empty_date_range_says_what_to_change(datamodule) -> None:
    with pytest.raises(ValueError, match="backtest.start"):
        forecast_split(PersistenceFake(), datamodule, batch_size=64, start="2030-01-01", progress=False, **SETTINGS)


def test_results_do_not_depend_on_batch_size(run, datamodule) -> None:
    _, frame = run
    other = forecast_split(PersistenceFake(), datamodule, batch_size=7, progress=False, **SETTINGS)
    pd.testing.assert_frame_equal(frame, other)


def test_reconstructed_anchor_is_the_tokenizers_view_of_the_last_close(datamodule) -> None:
    """anchor=reconstructed measures returns from the decoded last candle, so a forecast equal to the
    decoded history reads as no move even when the tokenizer misses the observed close."""
    from kronos import Kronos, KronosPredictor, KronosTokenizer
    from kronos.data.features import denormalize

    torch.manual_seed(0)
    tok = KronosTokenizer(d_in=6, d_model=16, n_heads=2, ff_dim=32, n_enc_layers=2, n_dec_layers=2,
                          ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4,
                          beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=4)
    model = Kronos(s1_bits=4, s2_bits=4, n_layers=1, d_model=16, n_heads=2, ff_dim=32, ffn_dropout_p=0.0,
                   attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)
    predictor = KronosPredictor(model, tok, device="cpu", max_context=64)
    kw = dict(sampling=SamplingSettings(sample_count=1, T=1.0, top_k=1, top_p=1.0), batch_size=64, progress=False)
    observed = forecast_split(predictor, datamodule, anchor="last_close", **kw)
    recon = forecast_split(predictor, datamodule, anchor="reconstructed", **kw)
    assert np.allclose(observed["anchor_close"], observed["last_close"])
    pred_cols = [c for c in observed if c.startswith("pred_close_")]
    assert np.allclose(observed[pred_cols], recon[pred_cols])  # same forecasts, different anchor

    batch = next(iter(datamodule.eval_dataloader("test", batch_size=8)))
    x_hist = batch["x"][:, :LOOKBACK]
    with torch.no_grad():
        decoded = tok.decode_ids(*tok.encode_ids(x_hist))[:, -1:].numpy()
    expected = denormalize(decoded, batch["mean"].numpy(), batch["std"].numpy())[:, 0, 3]
    assert np.allclose(recon["anchor_close"].to_numpy()[:8], expected, rtol=1e-5)
    assert not np.allclose(recon["anchor_close"], recon["last_close"])  # random weights reconstruct poorly
