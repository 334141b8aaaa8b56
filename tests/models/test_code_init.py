"""model.predictor.init=codes: token tables start as linear functions of the tokens' bits."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from kronos import Kronos
from kronos.models.bsq import BSQuantizer
from kronos.models.code_init import bit_matrix, init_from_codes
from kronos.stages.fit import build_predictor
from tests.inference.conftest import TINY_PREDICTOR


def test_bit_matrix_holds_the_ids_bits_as_the_quantizer_reads_them() -> None:
    codes = bit_matrix(5)
    assert codes.shape == (32, 5) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(BSQuantizer.bits_to_ids(codes), torch.arange(32))


def _residual(table: torch.Tensor, bits: int) -> float:
    """How far the rows of ``table`` are from the best linear function of the bits (relative)."""
    codes = bit_matrix(bits)
    solution = torch.linalg.lstsq(codes, table).solution
    return float((codes @ solution - table).norm() / table.norm())


def test_tables_become_linear_in_the_bits_at_their_default_scale() -> None:
    model = Kronos(**TINY_PREDICTOR)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    bits = TINY_PREDICTOR["s1_bits"]
    assert _residual(model.embedding.emb_s1.weight.detach(), bits) > 0.5      # the reference's unrelated rows
    init_from_codes(model, seed=3)
    for table, n in ((model.embedding.emb_s1.weight, TINY_PREDICTOR["s1_bits"]),
                     (model.embedding.emb_s2.weight, TINY_PREDICTOR["s2_bits"]),
                     (model.head.proj_s1.weight, TINY_PREDICTOR["s1_bits"]),
                     (model.head.proj_s2.weight, TINY_PREDICTOR["s2_bits"])):
        assert _residual(table.detach(), n) < 1e-5
    assert 0.7 < float(model.embedding.emb_s1.weight.detach().std()) < 1.3
    ratio = float(model.head.proj_s1.weight.detach().std() / fresh["head.proj_s1.weight"].std())
    assert 0.7 < ratio < 1.3 and float(model.head.proj_s1.bias.abs().max()) == 0.0
    # everything else is untouched; the same seed gives the same tables
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, fresh[k])}
    assert changed == {"embedding.emb_s1.weight", "embedding.emb_s2.weight", "head.proj_s1.weight",
                       "head.proj_s1.bias", "head.proj_s2.weight", "head.proj_s2.bias"}
    again = init_from_codes(Kronos(**TINY_PREDICTOR), seed=3)
    assert torch.equal(again.embedding.emb_s1.weight, model.embedding.emb_s1.weight)


def test_build_predictor_applies_it_only_when_asked() -> None:
    def cfg(init: str):
        return OmegaConf.create({"seed": 1, "model": {"predictor": {"init": init, "config": dict(TINY_PREDICTOR)}}})

    bits = TINY_PREDICTOR["s1_bits"]
    assert _residual(build_predictor(cfg("codes")).embedding.emb_s1.weight.detach(), bits) < 1e-5
    assert _residual(build_predictor(cfg("default")).embedding.emb_s1.weight.detach(), bits) > 0.5
