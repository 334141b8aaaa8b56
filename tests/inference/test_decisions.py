"""kronos.inference.decisions on real decision batches of a synthetic datamodule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos.data.datamodule import KronosDataModule
from kronos.data.synthetic import SyntheticSource
from kronos.inference.decisions import (
    collect_decision_forecasts,
    decision_arrays,
    iter_decision_forecasts,
)
from kronos.inference.settings import SamplingSettings

L, H = 16, 3
SAMPLING = SamplingSettings(T=1.0, top_p=1.0, sample_count=3, seed=4)


class NoiseForecaster:
    """Normalised paths ~ N(0, 1) drawn by the generator it is given; records what it was called with."""

    device = "cpu"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], torch.Generator | None]] = []

    def forecast_normalized(self, x, x_stamp, y_stamp, sampling, generator=None):
        self.calls.append((tuple(x.shape), generator))
        return torch.randn(x.shape[0], sampling.sample_count, y_stamp.shape[1], x.shape[2], generator=generator)


@pytest.fixture(scope="module")
def datamodule() -> KronosDataModule:
    source = SyntheticSource(n_instruments=4, n_steps=120, seed=1)
    return KronosDataModule(source, lookback=L, horizon=H, splits={"train": 0.6, "val": 0.1, "test": 0.3},
                            batch_size=8, seed=0)


def test_stream_yields_price_paths_per_batch(datamodule) -> None:
    forecaster = NoiseForecaster()
    batches = list(datamodule.eval_dataloader("test", batch_size=10))
    parts = list(iter_decision_forecasts(forecaster, batches, SAMPLING))
    assert [len(p) for p in parts] == [len(b["instrument"]) for b in batches]
    assert len({id(g) for _, g in forecaster.calls}) == 1  # one generator, from the seed, draws every batch
    first, batch = parts[0], batches[0]
    assert first.paths.shape == (10, 3, H, 6) and first.paths.dtype == np.float32
    assert first.x_hist.shape == (10, L, 6) and first.hist_close.shape == (10, L)
    np.testing.assert_array_equal(first.future_close, batch["close"][:, L:].numpy().astype(np.float64))
    np.testing.assert_array_equal(first.last_close, batch["close"][:, L - 1].numpy().astype(np.float64))
    # Paths are de-normalised with the window's own lookback statistics: their scale is the lookback's.
    closes = first.close_paths(3)
    assert closes.shape == (10, 3, H)
    assert np.all(np.abs(closes - batch["mean"][:, None, None, 3].numpy()) < 10 * batch["std"][:, None, None, 3].numpy() + 1)


def test_collect_joins_and_is_reproducible(datamodule) -> None:
    batches = list(datamodule.eval_dataloader("test", batch_size=10))
    whole = collect_decision_forecasts(NoiseForecaster(), batches, SAMPLING)
    again = collect_decision_forecasts(NoiseForecaster(), batches, SAMPLING)
    assert len(whole) == sum(len(b["instrument"]) for b in batches)
    np.testing.assert_array_equal(whole.paths, again.paths)  # same seed, same paths
    other = collect_decision_forecasts(NoiseForecaster(), batches, SamplingSettings(sample_count=3, seed=5))
    assert not np.array_equal(whole.paths, other.paths)
    with pytest.raises(ValueError, match="no decision batch"):
        collect_decision_forecasts(NoiseForecaster(), [], SAMPLING)


def test_older_layouts_and_bad_shapes_are_refused(datamodule) -> None:
    batch = next(iter(datamodule.eval_dataloader("test", batch_size=4)))
    older = {k: v for k, v in batch.items() if k != "y_stamp"} | {"x": torch.zeros(4, L + H, 6)}
    with pytest.raises(ValueError, match=r"lacks \['y_stamp'\]"):
        decision_arrays(older)
    with pytest.raises(ValueError, match="do not fit"):
        decision_arrays(batch | {"close": batch["close"][:, :L]})   # the y_close variant: no future in close

    class Wrong(NoiseForecaster):
        def forecast_normalized(self, *args, **kwargs):
            return super().forecast_normalized(*args, **kwargs)[:, :1]

    with pytest.raises(ValueError, match="forecast_normalized returned shape"):
        next(iter_decision_forecasts(Wrong(), [batch], SAMPLING))


class ReturnsForecaster(NoiseForecaster):
    """A predictor trained in ``returns`` normalisation (kronos.data.transforms)."""

    normalization = "returns"
    clip = 5.0


def test_decisions_use_the_predictors_normalisation(datamodule) -> None:
    """Windows built in level mode are re-encoded in the predictor's ``returns`` mode, and its paths are
    rebuilt from the last close: positive prices, wicks around the body, volume >= 0."""
    from kronos.data.transforms import encode

    batch = next(iter(datamodule.eval_dataloader("test", batch_size=10)))
    part = next(iter_decision_forecasts(ReturnsForecaster(), [batch], SAMPLING))
    expected = encode(batch["raw"][:, :L].numpy(), L, "returns", 5.0)
    np.testing.assert_array_equal(part.x_hist, expected.x)
    np.testing.assert_array_equal(part.mean, expected.mean)
    o, h, lo, c, v, a = np.moveaxis(part.paths, -1, 0)
    assert (part.paths[..., :4] > 0).all() and (v >= 0).all() and (a >= 0).all()
    assert (lo <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    # one step's close return is the decoded close channel measured from the last observed close
    ratio = np.log(c[:, :, 0] / part.last_close[:, None])
    assert np.abs(ratio).max() < 1.0
