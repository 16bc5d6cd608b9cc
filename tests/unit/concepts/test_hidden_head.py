"""The hidden-state head (Fig. 6b; brief §2.4) and the SAE head without compressor (Fig. 6d)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cocomix.concepts.head import ConceptHead
from cocomix.concepts.hidden_head import HiddenStateHead
from cocomix.registry import CocomixError

D, D_CON, C, K = 16, 12, 40, 5


def scrambled(head: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():  # non-zero biases so every term of the formula is exercised
        for name, p in head.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    return head


def test_hidden_head_formula() -> None:
    torch.manual_seed(0)
    head = scrambled(HiddenStateHead(D, D_CON, mlp_hidden=20))
    assert isinstance(head, HiddenStateHead)
    h = torch.randn(3, 7, D) * 4 + 2
    prediction, c_hat = head(h)
    # Literally: LN with the unbiased std, shared pre_bias, 2-layer GELU MLP, compress, denormalise.
    mu, sd = h.mean(-1, keepdim=True), h.std(-1, keepdim=True)
    x = (h - mu) / (sd + 1e-5) - head.pre_bias
    p = F.linear(F.gelu(F.linear(x, head.inner.weight, head.inner.bias), approximate="tanh"),
                 head.outer.weight, head.outer.bias)
    assert head.compressor is not None
    expected = (F.linear(p, head.compressor.weight, head.compressor.bias) + head.pre_bias) * sd + mu
    torch.testing.assert_close(prediction, p)
    assert c_hat is not None
    torch.testing.assert_close(c_hat, expected)
    assert prediction.shape == (3, 7, D_CON) and c_hat.shape == (3, 7, D)


def test_hidden_head_layout_init_and_counts() -> None:
    torch.manual_seed(0)
    head = HiddenStateHead(64, 48)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "pre_bias": (64,), "inner.weight": (256, 64), "inner.bias": (256,),  # 0 -> 4·d
        "outer.weight": (48, 256), "outer.bias": (48,),
        "compressor.weight": (64, 48), "compressor.bias": (64,),
    }
    for w in (head.inner.weight, head.outer.weight, head.compressor.weight):
        assert abs(w.std().item() - 0.02) < 0.003
    assert head.inactive_parameter_count() == 0  # dense: every parameter is used per token
    bare = HiddenStateHead(64, 48, compress=False)
    assert bare.compressor is None and "compressor.weight" not in bare.state_dict()
    prediction, c_hat = bare(torch.randn(2, 64))
    assert prediction.shape == (2, 48) and c_hat is None
    assert bare.inactive_parameter_count() == sum(p.numel() for p in bare.parameters())


def test_hidden_head_checks() -> None:
    with pytest.raises(CocomixError, match="set model.teacher_dim"):
        HiddenStateHead(16, 0)
    with pytest.raises(CocomixError, match="mlp_hidden=-2 must be >= 0"):
        HiddenStateHead(16, 8, mlp_hidden=-2)


def test_sae_head_without_compressor() -> None:
    torch.manual_seed(0)
    full = ConceptHead(D, C, K)
    torch.manual_seed(0)
    bare = ConceptHead(D, C, K, compress=False)
    assert bare.compressor is None
    assert set(bare.state_dict()) == {"pre_bias", "predictor.weight", "predictor.bias"}
    # Same predictor as the full head: CoCoMix's head minus the compressor.
    bare.load_state_dict({k: v for k, v in full.state_dict().items()
                          if not k.startswith("compressor.")})
    h = torch.randn(4, D)
    z, c_hat = bare(h)
    assert c_hat is None
    torch.testing.assert_close(z, full(h)[0])
    # Nothing reads it during the LM forward: the whole head is inactive (Fig. 6d: 53M).
    assert bare.inactive_parameter_count() == D * C + C + D
    assert full.inactive_parameter_count() == (C - K) * D
    with pytest.raises(CocomixError, match="without compressor"):
        bare.compress(torch.ones(1, K), torch.zeros(1, K, dtype=torch.long))
    assert "compress=False" in repr(bare)
