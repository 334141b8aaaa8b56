"""The explicit attention used where fused kernels lack dropout (MPS) equals the fused path."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kronos.models.layers import explicit_attention


def test_explicit_attention_matches_sdpa_causal_and_masked() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(explicit_attention(q, k, v, None, True, 0.0), expected, atol=1e-6)
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    mask |= torch.eye(5, dtype=torch.bool)  # every query keeps at least one key
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(explicit_attention(q, k, v, mask, False, 0.0), expected, atol=1e-6)


def test_explicit_attention_drops_weights_when_training() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    dropped = explicit_attention(q, k, v, None, True, 0.5)
    assert not torch.allclose(dropped, explicit_attention(q, k, v, None, True, 0.0))
