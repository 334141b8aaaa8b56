"""Cached decoding equals recomputing every window; batching and padding change nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos import KronosPredictor
from kronos.inference.generation import generate_tokens, window_inputs
from kronos.inference.settings import SamplingSettings
from tests.inference.conftest import future_timestamps, make_series

GREEDY = SamplingSettings(T=1.0, top_k=1, top_p=1.0)


def _tokens(models, lengths: list[int], pred_len: int, max_context: int, use_cache: bool,
            sampling: SamplingSettings = GREEDY, rolling: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    model, tokenizer = models
    model.eval(), tokenizer.eval()
    L = max(lengths)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(len(lengths), L, 6, generator=gen)
    stamps = torch.randint(0, 7, (len(lengths), L + pred_len, 5), generator=gen)
    starts = L - torch.tensor(lengths)
    with torch.inference_mode():
        positions, mask, _ = window_inputs(starts, 0, L)
        s1, s2 = tokenizer.encode_ids(x, positions, mask)
        return generate_tokens(model, s1, s2, stamps, starts, pred_len, max_context, sampling,
                               sampling.generator("cpu"), use_cache, rolling=rolling)


@pytest.mark.parametrize(
    "lengths,pred_len,max_context",
    [([20], 8, 64), ([20], 10, 24), ([40], 6, 24), ([12, 20, 7], 9, 64), ([12, 20, 7], 9, 16)],
    ids=["fits", "slides", "history_longer_than_context", "unequal_batch", "unequal_batch_slides"],
)
def test_cached_equals_uncached_greedy(tiny_models, lengths, pred_len, max_context) -> None:
    cached = _tokens(tiny_models, lengths, pred_len, max_context, use_cache=True)
    uncached = _tokens(tiny_models, lengths, pred_len, max_context, use_cache=False)
    assert torch.equal(cached[0], uncached[0]) and torch.equal(cached[1], uncached[1])


def test_cached_equals_uncached_when_sampling_paths(tiny_models) -> None:
    sampling = SamplingSettings(T=0.8, top_k=0, top_p=0.9, sample_count=3, seed=5)
    cached = _tokens(tiny_models, [15, 9], 7, 18, True, sampling=sampling)
    uncached = _tokens(tiny_models, [15, 9], 7, 18, False, sampling=sampling)
    assert torch.equal(cached[0], uncached[0]) and torch.equal(cached[1], uncached[1])
    generated = cached[0][:, 15:]
    assert len({tuple(row.tolist()) for row in generated}) > 1, "sample paths should differ"


@pytest.mark.parametrize("max_context", [64, 20])
@pytest.mark.parametrize("use_cache", [True, False])
def test_series_alone_equals_series_in_batch(tiny_models, use_cache: bool, max_context: int) -> None:
    model, tokenizer = tiny_models
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=max_context, use_cache=use_cache)
    series = [make_series(n, seed) for n, seed in ((25, 1), (14, 2), (31, 3))]
    pred_len = 6
    y_ts = [future_timestamps(ts, pred_len) for _, ts in series]
    batch = predictor.predict_batch([df for df, _ in series], [ts for _, ts in series], y_ts, pred_len,
                                    top_k=1, verbose=False)
    for (df, ts), y, in_batch in zip(series, y_ts, batch):
        alone = predictor.predict(df, ts, y, pred_len, top_k=1, verbose=False)
        assert list(alone.index) == list(y)
        np.testing.assert_allclose(in_batch.to_numpy(), alone.to_numpy(), rtol=1e-5, atol=1e-6)


def test_cached_mode_feeds_one_token_per_step_until_the_window_slides(tiny_models, monkeypatch) -> None:
    model, _ = tiny_models
    widths: list[int] = []
    hidden = model.hidden

    def spy(s1, *args, **kwargs):
        widths.append(s1.shape[1])
        return hidden(s1, *args, **kwargs)

    monkeypatch.setattr(model, "hidden", spy)
    _tokens(tiny_models, [20], 6, 22, use_cache=True)
    assert widths == [20, 1, 1, 22, 22, 22]  # prefill, cached steps, then exact window recomputes


def test_rolling_cache_is_exact_until_the_window_slides(tiny_models) -> None:
    """The approximate ring cache only departs from exact decoding once L + i exceeds max_context."""
    fits = _tokens(tiny_models, [12, 20, 7], 9, 64, use_cache=True, rolling=True)
    exact = _tokens(tiny_models, [12, 20, 7], 9, 64, use_cache=False)
    assert torch.equal(fits[0], exact[0]) and torch.equal(fits[1], exact[1])
    rolled = _tokens(tiny_models, [20], 12, 24, use_cache=True, rolling=True)
    exact = _tokens(tiny_models, [20], 12, 24, use_cache=False)
    first_slide = 24 - 20  # steps 0..3 see windows that still start at the first history token
    assert torch.equal(rolled[0][:, : 20 + first_slide + 1], exact[0][:, : 20 + first_slide + 1])


def test_rolling_cache_rows_do_not_depend_on_batch_padding(tiny_models) -> None:
    """Ring columns that held left padding stay masked: a padded row rolls like the series alone."""
    model, tokenizer = tiny_models
    series = [make_series(n, seed) for n, seed in ((25, 1), (14, 2))]
    pred_len = 12
    y_ts = [future_timestamps(ts, pred_len) for _, ts in series]
    predictor = KronosPredictor(model, tokenizer, device="cpu", max_context=20, rolling_cache=True)
    batch = predictor.predict_batch([df for df, _ in series], [ts for _, ts in series], y_ts, pred_len,
                                    top_k=1, verbose=False)
    for (df, ts), y, got in zip(series, y_ts, batch):
        alone = predictor.predict(df, ts, y, pred_len, top_k=1, verbose=False)
        np.testing.assert_allclose(got.to_numpy(), alone.to_numpy(), rtol=1e-5, atol=1e-5)
