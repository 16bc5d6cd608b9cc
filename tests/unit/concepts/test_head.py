"""The concept head (paper brief §1.3-1.4): LN statistics, shared pre_bias, TopK without ReLU, the
gathered compressor against the official dense computation, steering, and the active count."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from cocomix.concepts.head import ConceptHead, layer_norm_stats
from cocomix.registry import CocomixError

D, C, K = 16, 40, 5


def make_head(seed: int = 0, *, scramble: bool = True) -> ConceptHead:
    torch.manual_seed(seed)
    head = ConceptHead(D, C, K)
    if scramble:  # non-zero biases so every term of the formula is exercised
        with torch.no_grad():
            head.pre_bias.normal_()
            head.predictor.bias.normal_()
            head.compressor.bias.normal_()
    return head


def dense_reference(head: ConceptHead, h: Tensor) -> tuple[Tensor, Tensor]:
    """The official code, literally (brief §1.7): dense mask, dense compress_layer."""
    mu = h.mean(-1, keepdim=True)
    sd = h.std(-1, keepdim=True)  # unbiased
    x = (h - mu) / (sd + 1e-5)
    z = head.predictor(x - head.pre_bias)
    mask = torch.zeros_like(z).scatter(-1, torch.topk(z, head.topk, dim=-1).indices, 1.0)
    c_hat = (head.compressor(z * mask) + head.pre_bias) * sd + mu
    return z, c_hat


def test_shapes_and_layout() -> None:
    head = make_head()
    h = torch.randn(3, 7, D)
    z, c_hat = head(h)
    assert z.shape == (3, 7, C) and c_hat.shape == (3, 7, D)
    # Official state-dict layout: predictor (C, d), compressor (d, C), shared pre_bias (d).
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "pre_bias": (D,), "predictor.weight": (C, D), "predictor.bias": (C,),
        "compressor.weight": (D, C), "compressor.bias": (D,),
    }
    assert head(torch.randn(5, D))[1].shape == (5, D)  # any leading dims


def test_init() -> None:
    torch.manual_seed(0)
    head = ConceptHead(256, 1024, 32, init_std=0.02)
    for w in (head.predictor.weight, head.compressor.weight):
        assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    for b in (head.pre_bias, head.predictor.bias, head.compressor.bias):
        assert torch.all(b == 0)


def test_gather_equals_dense_reference_with_gradients() -> None:
    head = make_head()
    h = (torch.randn(2, 6, D) * 3 + 1).requires_grad_()
    z, c_hat = head(h)
    z_ref, c_ref = dense_reference(head, h)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(c_hat, c_ref, rtol=0, atol=1e-5)
    # Both losses: an LM-like term on c_hat and a concept-CE-like term on z.
    g = torch.randn_like(c_hat)
    params = [h, *head.parameters()]
    grads = torch.autograd.grad((c_hat * g).sum() + z.logsumexp(-1).sum(), params)
    grads_ref = torch.autograd.grad((c_ref * g).sum() + z_ref.logsumexp(-1).sum(), params)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_layer_norm_statistics_and_denormalisation() -> None:
    h = torch.randn(4, D) * 5 + 2
    x, mu, std = layer_norm_stats(h)
    torch.testing.assert_close(mu, h.mean(-1, keepdim=True))
    torch.testing.assert_close(std, torch.std(h, -1, correction=1, keepdim=True))
    torch.testing.assert_close(x, (h - mu) / (std + 1e-5))
    # c_hat lives at h's scale: with a zero compressor it is pre_bias * std + mu, per token.
    head = make_head()
    with torch.no_grad():
        head.compressor.weight.zero_()
        head.compressor.bias.zero_()
    _, c_hat = head(h)
    torch.testing.assert_close(c_hat, head.pre_bias * std + mu)
    # The statistics are not detached: the gradient reaches h through mu and std as well.
    h2 = h.clone().requires_grad_()
    head(h2)[1].sum().backward()
    assert h2.grad is not None and h2.grad.abs().sum() > 0


def test_topk_keeps_raw_negative_logits() -> None:
    head = make_head(scramble=False)
    with torch.no_grad():  # every logit negative: TopK must still pick k of them (no ReLU)
        head.predictor.bias.fill_(-10.0)
    h = torch.randn(3, D)
    z, c_hat = head(h)
    assert torch.all(z < 0)
    vals, idx = torch.topk(z, K, dim=-1)
    x, mu, std = layer_norm_stats(h)
    cols = head.compressor.weight[:, idx].permute(1, 2, 0)  # (3, K, d)
    expected = ((vals.unsqueeze(-1) * cols).sum(-2) + head.compressor.bias + head.pre_bias)
    torch.testing.assert_close(c_hat, expected * std + mu, rtol=0, atol=1e-5)
    # Gradients reach the predictor through the kept values (the LM path alone).
    head.zero_grad()
    head(h)[1].sum().backward()
    assert head.predictor.weight.grad is not None and head.predictor.weight.grad.abs().sum() > 0


def test_steering() -> None:
    head = make_head()
    h = torch.randn(2, 5, D)
    z0, c0 = head(h)
    head.set_concept_scale(3, 1.0)
    torch.testing.assert_close(head(h)[1], c0, rtol=0, atol=0)
    head.set_concept_scale(None)
    assert head.steer is None
    torch.testing.assert_close(head(h)[1], c0, rtol=0, atol=0)
    # A large scale switches the concept on everywhere it has a positive logit.
    target = int(z0[0, 0].argmin())
    head.steer = (target, -100.0) if z0[0, 0, target] < 0 else (target, 100.0)
    z1, c1 = head(h)
    torch.testing.assert_close(z1[..., target], z0[..., target] * head.steer[1])
    assert torch.topk(z1[0, 0], K).indices.tolist().count(target) == 1
    assert (c1[0, 0] - c0[0, 0]).abs().max() > 1e-3
    with pytest.raises(CocomixError, match="outside"):
        head.set_concept_scale(C, 2.0)


def test_inactive_count_and_errors() -> None:
    head = ConceptHead(D, C, K)
    assert head.inactive_parameter_count() == (C - K) * D
    with pytest.raises(CocomixError, match="k=41"):
        ConceptHead(D, C, 41)


def test_meta_materialisation_uses_the_normal_init() -> None:
    # fairseq2 materialises per module: to_empty + reset_parameters (non-recursive).
    head = ConceptHead(64, 512, 8, device=torch.device("meta"))
    torch.manual_seed(0)
    for module in head.modules():
        module.to_empty(device="cpu", recurse=False)
        module.reset_parameters()  # type: ignore[operator]
    assert abs(head.predictor.weight.std().item() - 0.02) < 0.002
    assert abs(head.compressor.weight.std().item() - 0.02) < 0.002
    assert torch.all(head.pre_bias == 0) and torch.all(head.compressor.bias == 0)


def test_autocast_bf16() -> None:
    head = make_head()
    h = torch.randn(2, 3, D)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, c_hat = head(h)
    _, c_ref = head(h)
    assert z.dtype == torch.bfloat16
    torch.testing.assert_close(c_hat.float(), c_ref, rtol=0.05, atol=0.1)

