"""Training-time paths of the tokenizer and the predictor."""

from __future__ import annotations

import math

import pytest
import torch

from kronos import Kronos, KronosTokenizer
from tests.inference.conftest import TINY_PREDICTOR, TINY_TOKENIZER


def test_tokenizer_loss_parts_and_gradients() -> None:
    torch.manual_seed(0)
    tok = KronosTokenizer(**TINY_TOKENIZER).train()
    x = torch.randn(3, 16, 6)
    parts = tok.compute_loss(x)
    expected = (parts["recon_loss_s1"] + parts["recon_loss"] + parts["bsq_loss"]) / 2
    torch.testing.assert_close(parts["loss"], expected)
    k = TINY_TOKENIZER["s1_bits"] + TINY_TOKENIZER["s2_bits"]
    assert 0 < parts["sample_entropy"] <= k * math.log(2) + 1e-4
    n_groups = k // TINY_TOKENIZER["group_size"]
    assert 0 < parts["codebook_entropy"] <= n_groups * TINY_TOKENIZER["group_size"] * math.log(2) + 1e-4
    parts["loss"].backward()
    assert tok.embed.weight.grad is not None and tok.embed.weight.grad.abs().sum() > 0


def test_tokenizer_step_loss_is_the_error_of_consecutive_changes() -> None:
    """step_loss = mse(diff(recon), diff(x)) over time, reported always, added to the loss with its weight."""
    from kronos.lightning.tokenizer_training import TokenizerModule

    tok = KronosTokenizer(**TINY_TOKENIZER).eval()
    x = torch.randn(3, 16, 6)
    plain, weighted = tok.compute_loss(x), tok.compute_loss(x, step_weight=2.5)
    recon = tok.run(x).recon
    torch.testing.assert_close(plain["step_loss"], ((recon.diff(dim=1) - x.diff(dim=1)) ** 2).mean())
    assert plain["step_loss"] > 0
    torch.testing.assert_close(weighted["loss"], plain["loss"] + 2.5 * plain["step_loss"])
    module = TokenizerModule(tok, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), step_loss_weight=2.5)
    torch.testing.assert_close(module._losses({"x": x})["loss"], weighted["loss"])
    with pytest.raises(ValueError, match="step_loss_weight"):
        TokenizerModule(tok, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), step_loss_weight=-1)


def test_tokenizer_ids_round_trip_through_codes() -> None:
    tok = KronosTokenizer(**TINY_TOKENIZER).eval()
    out = tok.run(torch.randn(2, 10, 6))
    codes = tok.tokenizer.ids_to_codes(out.s1_ids, out.s2_ids)
    torch.testing.assert_close(codes, out.quantized)
    assert out.s1_ids.max() < 2 ** TINY_TOKENIZER["s1_bits"]


def test_predictor_teacher_forced_loss_is_causal() -> None:
    torch.manual_seed(0)
    model = Kronos(**TINY_PREDICTOR).eval()
    s1 = torch.randint(0, 64, (2, 12))
    s2 = torch.randint(0, 64, (2, 12))
    stamp = torch.randint(0, 7, (2, 12, 5))
    s1_logits, s2_logits = model(s1, s2, stamp, use_teacher_forcing=True, s1_targets=s1)
    changed = s1.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 64
    s1_b, s2_b = model(changed, s2, stamp, use_teacher_forcing=True, s1_targets=changed)
    torch.testing.assert_close(s1_b[:, :-1], s1_logits[:, :-1])
    torch.testing.assert_close(s2_b[:, :-1], s2_logits[:, :-1])
    assert not torch.allclose(s2_b[:, -1], s2_logits[:, -1])


@pytest.mark.parametrize("sampled_s1", [False, True])
def test_predictor_loss_parts(sampled_s1: bool) -> None:
    torch.manual_seed(0)
    model = Kronos(**TINY_PREDICTOR).train()
    s1 = torch.randint(0, 64, (2, 12))
    parts = model.compute_loss(s1, torch.randint(0, 64, (2, 12)), torch.randint(0, 7, (2, 12, 5)), sampled_s1=sampled_s1)
    torch.testing.assert_close(parts["loss"], (parts["s1_loss"] + parts["s2_loss"]) / 2)
    assert 0 <= parts["s1_acc"] <= 1 and 0 <= parts["s2_acc"] <= 1
    # Untrained, the cross entropy is near log(vocab).
    assert abs(parts["s1_loss"].item() - math.log(64)) < 1.0
    parts["loss"].backward()
    assert model.embedding.emb_s1.weight.grad.abs().sum() > 0


def test_predictor_loss_restricted_to_horizon_targets() -> None:
    """target_start=L scores only rows L..T-1 (the horizon); earlier rows remain context."""
    torch.manual_seed(0)
    model = Kronos(**TINY_PREDICTOR).eval()
    s1, s2 = torch.randint(0, 64, (2, 12)), torch.randint(0, 64, (2, 12))
    stamp = torch.randint(0, 7, (2, 12, 5))
    lookback = 9
    horizon_only = model.compute_loss(s1, s2, stamp, target_start=lookback)
    s1_logits, s2_logits = model(s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:])
    ce = torch.nn.functional.cross_entropy
    s1_loss = ce(s1_logits[:, lookback - 1:].reshape(-1, 64), s1[:, lookback:].reshape(-1))
    s2_loss = ce(s2_logits[:, lookback - 1:].reshape(-1, 64), s2[:, lookback:].reshape(-1))
    torch.testing.assert_close(horizon_only["s1_loss"], s1_loss)
    torch.testing.assert_close(horizon_only["s2_loss"], s2_loss)
    assert not torch.allclose(horizon_only["loss"], model.compute_loss(s1, s2, stamp)["loss"])
    with pytest.raises(ValueError, match="target_start=12"):
        model.compute_loss(s1, s2, stamp, target_start=12)


def test_predictor_module_loss_targets_option() -> None:
    from functools import partial

    from kronos.lightning.predictor_training import PredictorModule
    from tests.inference.conftest import TINY_TOKENIZER

    args = (KronosTokenizer(**TINY_TOKENIZER), Kronos(**TINY_PREDICTOR), partial(torch.optim.AdamW, lr=1e-3))
    assert PredictorModule(*args).target_start == 1
    assert PredictorModule(*args, loss_targets="horizon", lookback=9).target_start == 9
    with pytest.raises(ValueError, match="stage.loss_targets='future'"):
        PredictorModule(*args, loss_targets="future", lookback=9)
    with pytest.raises(ValueError, match="needs the lookback"):
        PredictorModule(*args, loss_targets="horizon")
