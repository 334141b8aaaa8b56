"""The model owns its cache: sized from its own config, read and written by ``decode_step``."""

from __future__ import annotations

import torch

from kronos import Kronos


def _model() -> Kronos:
    torch.manual_seed(0)
    return Kronos(s1_bits=4, s2_bits=4, n_layers=2, d_model=16, n_heads=2, ff_dim=32, ffn_dropout_p=0.0,
                  attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True).eval()


def test_cache_is_sized_from_the_models_config() -> None:
    model = _model()
    cache = model.new_kv_cache(batch=3, capacity=10)
    assert len(cache.layers) == model.n_layers
    assert all(k.shape == v.shape == (3, model.n_heads, 10, model.d_model // model.n_heads) for k, v in cache.layers)
    assert cache.dep[0].shape == (3, 4, 10, model.d_model // 4) and cache.dep[0].dtype == model.dtype


def test_cached_steps_equal_one_pass_over_the_window() -> None:
    """Prefill 6 tokens, then 2 single-token steps through the cache: the hidden states and dependency
    keys/values equal one uncached pass over all 8 tokens."""
    model = _model()
    g = torch.Generator().manual_seed(1)
    s1, s2 = torch.randint(0, 16, (2, 8), generator=g), torch.randint(0, 16, (2, 8), generator=g)
    stamp = torch.randint(0, 7, (2, 8, 5), generator=g)
    with torch.inference_mode():
        full_h, full_k, full_v = model.decode_step(s1, s2, stamp)
        cache = model.new_kv_cache(2, 8)
        model.decode_step(s1[:, :6], s2[:, :6], stamp[:, :6], cache=cache, start=0)
        for c in (6, 7):
            h, k, v = model.decode_step(s1[:, c:c + 1], s2[:, c:c + 1], stamp[:, c:c + 1],
                                        positions=torch.full((2, 1), c), cache=cache, start=c)
    torch.testing.assert_close(h[:, 0], full_h[:, -1])
    torch.testing.assert_close(k, full_k)
    torch.testing.assert_close(v, full_v)
