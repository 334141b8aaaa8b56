"""sample_from_logits: greedy, top-k, top-p and temperature."""

from __future__ import annotations

import torch

from kronos.inference.token_sampling import sample_from_logits
from kronos.inference.settings import SamplingSettings


def test_top_k_one_is_argmax() -> None:
    logits = torch.randn(5, 50)
    assert torch.equal(sample_from_logits(logits, SamplingSettings(top_k=1)), logits.argmax(-1))


def test_top_k_keeps_only_the_k_largest() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.5, -1.0]]).repeat(400, 1)
    drawn = sample_from_logits(logits, SamplingSettings(top_k=2), torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {1, 3}


def test_top_p_keeps_tokens_until_mass_reached() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(1000, 1)
    drawn = sample_from_logits(logits, SamplingSettings(top_p=0.7), torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1}  # 0.5 <= 0.7 so token 1 stays; 0.8 > 0.7 drops the rest
    tiny = sample_from_logits(logits, SamplingSettings(top_p=0.1), torch.Generator().manual_seed(0))
    assert set(tiny.tolist()) == {0}  # the most likely token is always kept


def test_generator_makes_draws_reproducible_and_temperature_sharpens() -> None:
    logits = torch.randn(200, 30, generator=torch.Generator().manual_seed(1))
    a = sample_from_logits(logits, SamplingSettings(T=1.0, top_p=1.0), torch.Generator().manual_seed(7))
    b = sample_from_logits(logits, SamplingSettings(T=1.0, top_p=1.0), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    cold = sample_from_logits(logits, SamplingSettings(T=0.01, top_p=1.0), torch.Generator().manual_seed(7))
    assert (cold == logits.argmax(-1)).float().mean() > 0.95
    a_seed, b_seed = (sample_from_logits(logits, SamplingSettings(seed=7), SamplingSettings(seed=7).generator("cpu"))
                      for _ in range(2))
    assert torch.equal(a_seed, b_seed)  # the one seeding mechanism: a generator made from the seed
