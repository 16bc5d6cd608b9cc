"""Attribution (paper Eq. 1, code and paper variants) and activation labels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cocomix.concepts.attribution import (
    activation_labels,
    attribution_dense_pre,
    attribution_labels,
    attribution_sparse,
    teacher_grad,
    top_labels_dense,
    top_labels_sparse,
)
from cocomix.concepts.sae import SparseCode, TopKSAE
from cocomix.registry import CocomixError
from cocomix.types import TeacherLM


class LinearTeacher(nn.Module):
    """hidden_at = embedding; logits = fixed linear map A of it, so dL/dh is known in closed form."""

    def __init__(self, vocab: int = 7, d: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = nn.Parameter(torch.randn(vocab, d, generator=g))
        self.A = nn.Parameter(torch.randn(d, vocab, generator=g))
        self.num_layers, self.model_dim, self.vocab_size = 1, d, vocab

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        return self.embed[tokens]

    def logits(self, tokens: Tensor, layer: int | None = None, edit=None) -> Tensor:
        hidden = self.hidden_at(tokens, 0)
        return (edit(hidden) if edit is not None else hidden) @ self.A


class MixingTeacher(nn.Module):
    """Two residual layers with causal mean mixing above the SAE layer (like attention)."""

    def __init__(self, vocab: int = 11, d: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(nn.Linear(d, d) for _ in range(2))
        self.head = nn.Linear(d, vocab)
        self.num_layers, self.model_dim, self.vocab_size = 2, d, vocab

    def _block(self, i: int, h: Tensor) -> Tensor:
        causal_mean = h.cumsum(1) / torch.arange(1, h.shape[1] + 1).view(1, -1, 1)
        return h + torch.tanh(self.blocks[i](causal_mean))

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        h = self.embed(tokens)
        for i in range(layer + 1):
            h = self._block(i, h)
        return h

    def logits(self, tokens: Tensor, layer: int | None = None, edit=None) -> Tensor:
        top = self.num_layers - 1 if layer is None else layer
        h = self.hidden_at(tokens, top)
        if edit is not None:
            h = edit(h)
        for i in range(top + 1, self.num_layers):
            h = self._block(i, h)
        return self.head(h)


def _identity_sae(d: int = 8, k: int = 4) -> TopKSAE:
    """Orthonormal (identity) encoder and decoder, no normalisation: code = top-k coordinates."""
    sae = TopKSAE(d, d, k, normalize=False)
    with torch.no_grad():
        sae.encoder.weight.copy_(torch.eye(d))
        sae.decoder.weight.copy_(torch.eye(d))
    return sae


def test_teacher_grad_matches_closed_form_and_leaves_params_alone() -> None:
    teacher = LinearTeacher()
    assert isinstance(teacher, TeacherLM)
    tokens = torch.tensor([[1, 4, 2, 6, 0], [3, 3, 5, 1, 2]])
    with torch.no_grad():  # works inside no_grad
        h, grad = teacher_grad(teacher, tokens, 0)
    probs = torch.softmax(h @ teacher.A, -1)
    target = F.one_hot(tokens[:, 1:], 7).float()
    expected = torch.zeros_like(h)
    expected[:, :-1] = (probs[:, :-1] - target) @ teacher.A.t() / (2 * 4)
    torch.testing.assert_close(grad, expected.detach())
    assert torch.all(grad[:, -1] == 0)  # the last position predicts nothing
    assert not h.requires_grad and not grad.requires_grad
    assert all(p.grad is None for p in teacher.parameters())  # params had requires_grad=True
    with pytest.raises(CocomixError, match="T >= 2"):
        teacher_grad(teacher, tokens[:, :1], 0)


def test_full_sequence_gradient_reaches_earlier_positions_only() -> None:
    teacher = MixingTeacher()
    tokens = torch.randint(0, 11, (2, 6))
    _, grad = teacher_grad(teacher, tokens, 0)
    assert torch.all(grad[:, -1] == 0) and torch.all(grad[:, :-1].norm(dim=-1) > 0)
    assert all(p.grad is None for p in teacher.parameters())


def test_hand_made_winners_code_vs_paper() -> None:
    sae = _identity_sae()
    h = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5, -1.0, -2.0])
    grad = torch.tensor([0.1, 1.0, -1.0, 3.0, 100.0, 0.0, 0.0, 0.0])
    code = sae.encode(h)
    assert code.indices.tolist() == [0, 1, 2, 3]
    scores = attribution_sparse(grad, code, sae.decoder_rows)
    torch.testing.assert_close(scores, torch.tensor([0.5, 4.0, -3.0, 6.0]))
    assert top_labels_sparse(scores, code.indices, 2).tolist() == [3, 1]
    # paper variant: pre-activations let the inactive latent 4 (pre 1.0, grad 100) win
    assert attribution_labels(sae, h, grad, 2, "paper").tolist() == [4, 3]
    assert attribution_labels(sae, h, grad, 2, "code").tolist() == [3, 1]
    assert activation_labels(code, 2).tolist() == [0, 1]
    with pytest.raises(CocomixError, match="K_attr=5 is larger than the SAE's k=4"):
        top_labels_sparse(scores, code.indices, 5)
    with pytest.raises(CocomixError, match="unknown attribution variant"):
        attribution_labels(sae, h, grad, 2, "abs")


def test_end_to_end_labels_with_analytic_gradient() -> None:
    teacher, sae = LinearTeacher(), _identity_sae()
    tokens = torch.tensor([[1, 4, 2, 6, 0, 5]])
    h, grad = teacher_grad(teacher, tokens, 0)
    probs = torch.softmax(h @ teacher.A, -1)[:, :-1]
    g = (probs - F.one_hot(tokens[:, 1:], 7).float()) @ teacher.A.t() / 5
    top = torch.topk(h[0, :-1], 4, dim=-1)
    scores = torch.relu(top.values) * g[0].gather(-1, top.indices)  # identity decoder
    expected = top.indices.gather(-1, scores.topk(2, dim=-1).indices)
    labels = attribution_labels(sae, h, grad, 2, "code")
    assert labels.shape == (1, 6, 2)
    assert torch.equal(labels[0, :-1].sort(-1).values, expected.sort(-1).values)


def test_sparse_code_variant_equals_dense_reference() -> None:
    g = torch.Generator().manual_seed(0)
    sae = TopKSAE(16, 64, 8, generator=g)
    with torch.no_grad():
        sae.encoder.weight.normal_(generator=g)
    h = torch.randn(4, 50, 16, generator=g)
    grad = torch.randn(4, 50, 16, generator=g)
    code = sae.encode(h)
    scores = attribution_sparse(grad, code, sae.decoder_rows)
    dense = code.to_dense(64) * (grad @ sae.decoder.weight)  # the official code's three tensors
    k_attr = 3
    ours = top_labels_sparse(scores, code.indices, k_attr).sort(-1).values
    ref = top_labels_dense(dense, k_attr).sort(-1).values
    enough_positive = ((scores > 0).sum(-1) >= k_attr)
    assert enough_positive.float().mean() > 0.5
    assert torch.equal(ours[enough_positive], ref[enough_positive])
    torch.testing.assert_close(dense.gather(-1, code.indices), scores)
    # and the paper variant is exactly c_pre * (grad @ W_dec)
    pre = sae.encode_pre(sae.preprocess(h)[0])
    torch.testing.assert_close(attribution_dense_pre(grad, pre, sae.decoder_rows), pre * (grad @ sae.decoder.weight))


class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any aten op returns (views included)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_code_variant_never_builds_a_btn_tensor() -> None:
    B, T, d, n, k = 2, 64, 16, 32768, 32
    sae = TopKSAE(d, n, k, generator=torch.Generator().manual_seed(0))
    h, grad = torch.randn(B, T, d), torch.randn(B, T, d)
    code = sae.encode(h)  # the pre-activations are B*T*n by definition; the probe starts after
    with _LargestOutput() as probe:
        labels = top_labels_sparse(attribution_sparse(grad, code, sae.decoder_rows), code.indices, 4)
    assert labels.shape == (B, T, 4)
    assert probe.largest <= d * n < B * T * n  # the biggest thing touched is W_dec itself
    with _LargestOutput() as control:  # the probe does see the dense (paper) path
        attribution_dense_pre(grad, torch.zeros(B, T, n), sae.decoder_rows)
    assert control.largest >= B * T * n


def test_activation_labels_are_most_active() -> None:
    code = SparseCode(
        values=torch.tensor([[0.5, 3.0, 1.0, 2.0]]),
        indices=torch.tensor([[10, 11, 12, 13]]),
        mu=torch.zeros(1, 1),
        std=torch.ones(1, 1),
    )
    assert activation_labels(code, 2).tolist() == [[11, 13]]
