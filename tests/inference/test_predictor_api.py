"""KronosPredictor: outputs, sample paths, and one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos import Kronos, KronosPredictor
from kronos.data.features import FEATURES
from kronos.inference import ForecastInputError, ForecastSamples
from kronos.inference.settings import SamplingSettings
from tests.inference.conftest import TINY_PREDICTOR, future_timestamps, make_series


@pytest.fixture()
def predictor(tiny_models) -> KronosPredictor:
    model, tokenizer = tiny_models
    return KronosPredictor(model, tokenizer, max_context=32)


def test_device_auto_and_eval_mode(predictor: KronosPredictor) -> None:
    assert predictor.device.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    assert not predictor.model.training and not predictor.tokenizer.training


def test_predict_samples_paths_mean_quantiles(predictor: KronosPredictor) -> None:
    df, ts = make_series(30, 0)
    y = future_timestamps(ts, 5)
    samples = predictor.predict_samples(df, ts, y, 5, T=1.0, top_p=0.9, sample_count=4, verbose=False,
                                        generator=torch.Generator().manual_seed(0))
    assert isinstance(samples, ForecastSamples) and samples.paths.shape == (4, 5, 6)
    assert list(samples.mean().columns) == list(FEATURES) and list(samples.mean().index) == list(y)
    np.testing.assert_allclose(samples.mean().to_numpy(), samples.paths.mean(axis=0), rtol=1e-6)
    q = samples.quantiles((0.1, 0.9))
    assert (q[0.1].to_numpy() <= q[0.9].to_numpy()).all()
    again = predictor.predict(df, ts, y, 5, T=1.0, top_p=0.9, sample_count=4, verbose=False,
                              generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(again.to_numpy(), samples.mean().to_numpy(), rtol=1e-6)


def test_sampling_whole_equals_the_reference_keywords(predictor: KronosPredictor) -> None:
    """``sampling=SamplingSettings(...)`` and the reference's T/top_p/sample_count keywords draw the same paths;
    a seed in the settings makes the generator, so no generator argument is needed."""
    df, ts = make_series(30, 0)
    y = future_timestamps(ts, 5)
    loose = predictor.predict_samples(df, ts, y, 5, T=0.8, top_p=0.9, sample_count=3, verbose=False,
                                      generator=torch.Generator().manual_seed(11))
    whole = predictor.predict_samples(df, ts, y, 5, verbose=False,
                                      sampling=SamplingSettings(T=0.8, top_p=0.9, sample_count=3, seed=11))
    np.testing.assert_array_equal(loose.paths, whole.paths)
    with pytest.raises(ForecastInputError, match="either whole"):
        predictor.predict(df, ts, y, 5, T=0.5, sampling=SamplingSettings(), verbose=False)


def test_forecast_normalized_shape(predictor: KronosPredictor) -> None:
    x = torch.randn(3, 10, 6)
    stamps = torch.randint(0, 7, (3, 14, 5))
    out = predictor.forecast_normalized(x, stamps[:, :10], stamps[:, 10:], SamplingSettings(top_k=1, sample_count=2),
                                        lengths=torch.tensor([10, 4, 7]))
    assert out.shape == (3, 2, 4, 6) and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0], out[:, 1])  # greedy paths are identical


def _call(predictor: KronosPredictor, df, x_ts, y_ts, pred_len=4):
    return predictor.predict(df, x_ts, y_ts, pred_len, top_k=1, verbose=False)


def test_missing_price_column(predictor: KronosPredictor) -> None:
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match=r"missing price column\(s\) \['low'\]"):
        _call(predictor, df.drop(columns="low"), ts, future_timestamps(ts, 4))


def test_nan_names_column_and_row(predictor: KronosPredictor) -> None:
    df, ts = make_series(20, 0)
    df.loc[7, "volume"] = np.nan
    with pytest.raises(ForecastInputError, match=r"'volume' has NaN at row 7"):
        _call(predictor, df, ts, future_timestamps(ts, 4))


def test_inf_names_column_and_row(predictor: KronosPredictor) -> None:
    """Regression: inf passed validation and made every forecast value NaN."""
    df, ts = make_series(20, 0)
    df.loc[5, "close"] = np.inf
    with pytest.raises(ForecastInputError, match=r"'close' has inf at row 5"):
        _call(predictor, df, ts, future_timestamps(ts, 4))


def test_predict_batch_rejects_a_single_frame(predictor: KronosPredictor) -> None:
    """Regression: one DataFrame passed to predict_batch was read as a list of its columns."""
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match="df_list must be a list of DataFrames, got one DataFrame"):
        predictor.predict_batch(df, ts, future_timestamps(ts, 4), 4, verbose=False)


def test_pred_len_longer_than_max_context_is_one_message(predictor: KronosPredictor) -> None:
    """Regression: pred_len > max_context ended in a RuntimeError from a tensor reshape."""
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match=r"pred_len \(40\) is longer than max_context \(32\)"):
        _call(predictor, df, ts, future_timestamps(ts, 40), pred_len=40)


def test_duplicated_feature_column_is_one_message(predictor: KronosPredictor) -> None:
    """Regression: a second 'close' column ended in an AttributeError."""
    df, ts = make_series(20, 0)
    twice = pd.concat([df, df[["close"]]], axis=1)
    with pytest.raises(ForecastInputError, match=r"column\(s\) \['close'\] more than once"):
        _call(predictor, twice, ts, future_timestamps(ts, 4))


def test_non_datetime_timestamps(predictor: KronosPredictor) -> None:
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match="x_timestamp holds int64 values, not datetimes"):
        _call(predictor, df, pd.Series(np.arange(20)), future_timestamps(ts, 4))
    with pytest.raises(ForecastInputError, match="x_timestamp could not be read as datetimes"):
        _call(predictor, df, pd.Series(["not a date"] * 20), future_timestamps(ts, 4))


def test_timestamp_length_mismatch(predictor: KronosPredictor) -> None:
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match="x_timestamp has 19 entries but the number of rows of df is 20"):
        _call(predictor, df, ts[:19], future_timestamps(ts, 4))


def test_y_timestamp_must_match_pred_len(predictor: KronosPredictor) -> None:
    df, ts = make_series(20, 0)
    with pytest.raises(ForecastInputError, match="y_timestamp has 3 entries but pred_len is 4"):
        _call(predictor, df, ts, future_timestamps(ts, 3))


def test_batch_errors_name_the_series(predictor: KronosPredictor) -> None:
    (a, ta), (b, tb) = make_series(20, 0), make_series(15, 1)
    b = b.drop(columns="close")
    with pytest.raises(ForecastInputError, match=r"df_list\[1\] is missing"):
        predictor.predict_batch([a, b], [ta, tb], [future_timestamps(ta, 4), future_timestamps(tb, 4)], 4, verbose=False)


def test_bit_widths_must_agree(tiny_models) -> None:
    _, tokenizer = tiny_models
    other = Kronos(**{**TINY_PREDICTOR, "s1_bits": 8, "s2_bits": 8})
    with pytest.raises(ValueError, match=r"tokenizer bits \(s1_bits=6, s2_bits=6\) differ.*s1_bits=8"):
        KronosPredictor(other, tokenizer)


def test_unusable_device_is_one_forecast_input_error(tiny_models) -> None:
    """device='cuda:0' without a GPU (or 'tpu') is one ForecastInputError, not torch's AssertionError."""
    from kronos.inference.validation import ForecastInputError

    model, tokenizer = tiny_models
    bad = ["tpu"] + ([] if torch.cuda.is_available() else ["cuda:0"])
    for device in bad:
        with pytest.raises(ForecastInputError, match="device"):
            KronosPredictor(model, tokenizer, device=device)
