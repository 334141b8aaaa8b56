"""Input normalisations (kronos.data.transforms): causal, invertible, valid candles by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kronos.data.panel import Panel
from kronos.data.synthetic import SyntheticSource
from kronos.data.transforms import LEVEL, RETURNS, NormalizationError, check_normalization, decode, encode
from kronos.data.windows import WindowStore
from kronos.errors import KronosUserError

L, H = 20, 5


@pytest.fixture(scope="module")
def panel() -> Panel:
    return SyntheticSource(n_instruments=4, n_steps=120, seed=3).load()


def test_returns_horizon_cannot_change_normalised_lookback(panel: Panel) -> None:
    values = [v.copy() for v in panel.values]
    values[1][30 + L: 30 + L + H] *= np.array([3.0, 5.0, 0.5, 2.0, 40.0, 9.0], dtype=np.float32)
    perturbed = Panel(panel.instruments, panel.timestamps, values, panel.member, panel.origin)
    inst, off = np.array([1]), np.array([30])
    a = WindowStore(panel, L, H, normalization=RETURNS).gather(inst, off, with_eval=True)
    b = WindowStore(perturbed, L, H, normalization=RETURNS).gather(inst, off, with_eval=True)
    assert torch.equal(a["x"][:, :L], b["x"][:, :L])
    assert torch.equal(a["mean"], b["mean"]) and torch.equal(a["std"], b["std"])
    assert not torch.equal(a["x"][:, L:], b["x"][:, L:])  # the perturbation did reach the horizon


def test_returns_inputs_do_not_depend_on_the_price_scale(panel: Panel) -> None:
    raw = panel.values[0][:L + H].astype(np.float64)
    scaled = raw * np.array([7.0, 7.0, 7.0, 7.0, 1.0, 1.0])
    a, b = encode(raw, L, RETURNS, 5.0), encode(scaled, L, RETURNS, 5.0)
    np.testing.assert_allclose(a.x[..., :4], b.x[..., :4], atol=1e-4)
    level_a, level_b = encode(raw, L, LEVEL, 5.0), encode(scaled, L, LEVEL, 5.0)
    assert not np.allclose(level_a.mean[:4], level_b.mean[:4])


@pytest.mark.parametrize("normalization", [LEVEL, RETURNS])
def test_decode_inverts_encode_on_the_horizon(panel: Panel, normalization: str) -> None:
    raw = np.stack([v[:L + H] for v in panel.values]).astype(np.float64)            # [4, L+H, 6]
    enc = encode(raw, L, normalization, clip=1e6)
    counts: dict[str, int] = {}
    out = decode(enc.x[:, L:], enc.mean, enc.std, enc.anchor, normalization, counts)
    np.testing.assert_allclose(out, raw[:, L:], rtol=2e-3)
    assert counts.get("negative_wick", 0) == 0 and counts.get("negative_volume", 0) == 0


def test_returns_decode_gives_possible_candles_and_counts_repairs() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (8, 4, H, 6)).astype(np.float32)                              # [B, S, H, 6]
    mean, std = rng.normal(0, 0.01, (8, 1, 6)), np.abs(rng.normal(0.02, 0.01, (8, 1, 6)))
    counts: dict[str, int] = {}
    out = decode(z, mean, std, np.full((8, 1), 50.0), RETURNS, counts)
    o, h, lo, c, v, a = np.moveaxis(out, -1, 0)
    assert (out[..., :4] > 0).all() and (v >= 0).all() and (a >= 0).all()
    assert (lo <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    t = z * (std[..., None, :] + 1e-5) + mean[..., None, :]
    assert counts["negative_wick"] == int((t[..., 1:3] < 0).sum()) > 0
    assert counts["negative_volume"] == int((t[..., 4:6] < 0).sum()) > 0


def test_unknown_or_unsupported_normalisation_is_a_user_error() -> None:
    with pytest.raises(KronosUserError, match="data.normalization='logs'"):
        check_normalization("logs")
    with pytest.raises(NormalizationError, match="data.features"):
        check_normalization(RETURNS, ("open", "close"))
    assert check_normalization(None) == LEVEL
