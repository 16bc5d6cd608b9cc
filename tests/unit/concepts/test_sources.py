"""Registered concept sources: attribution, activation, teacher_hidden."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cocomix.concepts.attribution import activation_labels, attribution_labels, teacher_grad
from cocomix.concepts.sae import TopKSAE
from cocomix.concepts.sources import (
    ActivationConfig,
    AttributionConfig,
    ConceptBatch,
    ConceptSource,
    SourceContext,
    TeacherHiddenConfig,
)
from cocomix.registry import CONCEPT_SOURCES, CocomixError

VOCAB, D, N, K = 13, 8, 48, 6


class TinyTeacher(nn.Module):
    """Embedding, three residual tanh(Linear) blocks with causal-mean mixing, linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, D)
        self.blocks = nn.ModuleList(nn.Linear(D, D) for _ in range(3))
        self.head = nn.Linear(D, VOCAB)
        self.num_layers, self.model_dim, self.vocab_size = 3, D, VOCAB

    def _run(self, h: Tensor, layers: range) -> Tensor:
        for i in layers:
            mixed = h.cumsum(1) / torch.arange(1, h.shape[1] + 1).view(1, -1, 1)
            h = h + torch.tanh(self.blocks[i](mixed))
        return h

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        return self._run(self.embed(tokens), range(layer + 1))

    def logits(self, tokens: Tensor, layer: int | None = None, edit=None) -> Tensor:
        top = self.num_layers - 1 if layer is None else layer
        h = self.hidden_at(tokens, top)
        h = edit(h) if edit is not None else h
        return self.head(self._run(h, range(top + 1, self.num_layers)))


def _context(sae: TopKSAE | None = None, layer: int = 1) -> SourceContext:
    if sae is None:
        sae = TopKSAE(D, N, K, generator=torch.Generator().manual_seed(0))
    return SourceContext(teacher=TinyTeacher(), sae=sae, layer=layer)


def _tokens() -> Tensor:
    return torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(3))


def test_sources_are_registered() -> None:
    for name in ("attribution", "activation", "teacher_hidden"):
        assert name in CONCEPT_SOURCES
    assert CONCEPT_SOURCES.get("attribution").config_cls is AttributionConfig


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_attribution_source_labels(variant: str) -> None:
    context = _context()
    source = CONCEPT_SOURCES.build("attribution", AttributionConfig(k_attr=3, variant=variant), context)
    assert isinstance(source, ConceptSource) and source.num_concepts == N
    # teacher and SAE are frozen by the constructor
    for module in (context.teacher, context.sae):
        assert not module.training and not any(p.requires_grad for p in module.parameters())
    tokens = _tokens()
    with torch.no_grad():  # sources work inside no_grad (the trainer's view of the teacher)
        batch = source.targets(tokens, sample_index=torch.arange(2))  # online sources ignore it
    assert isinstance(batch, ConceptBatch) and batch.hidden is None
    assert batch.labels is not None and batch.labels.shape == (2, 10, 3) and batch.labels.dtype == torch.long
    assert 0 <= batch.labels.min() and batch.labels.max() < N
    h, grad = teacher_grad(context.teacher, tokens, 1)
    assert torch.equal(batch.labels, attribution_labels(context.sae, h, grad, 3, variant))
    if variant == "code":  # labels are active latents
        active = context.sae.encode(h).indices
        assert torch.all((batch.labels[..., None] == active[..., None, :]).any(-1))
    assert all(p.grad is None for p in context.teacher.parameters())


def test_attribution_source_ignores_autocast() -> None:
    source = CONCEPT_SOURCES.build("attribution", AttributionConfig(), _context())
    tokens = _tokens()
    plain = source.targets(tokens).labels
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(source.targets(tokens).labels, plain)


def test_attribution_source_validates() -> None:
    with pytest.raises(CocomixError, match="K_attr=8 is larger than the SAE's k=6 active latents; lower concepts.k_attr"):
        CONCEPT_SOURCES.build("attribution", AttributionConfig(k_attr=8), _context())
    CONCEPT_SOURCES.build("attribution", AttributionConfig(k_attr=8, variant="paper"), _context())  # n=48 is fine
    with pytest.raises(CocomixError, match="unknown concepts.variant 'abs'"):
        CONCEPT_SOURCES.build("attribution", AttributionConfig(variant="abs"), _context())
    with pytest.raises(CocomixError, match="SAE width 16 does not match the teacher's hidden size 8"):
        CONCEPT_SOURCES.build("attribution", AttributionConfig(), _context(TopKSAE(16, N, K)))
    with pytest.raises(CocomixError, match="concept layer 3 is outside"):
        CONCEPT_SOURCES.build("attribution", AttributionConfig(), _context(layer=3))
    with pytest.raises(CocomixError, match="needs an SAE"):
        CONCEPT_SOURCES.build("attribution", AttributionConfig(), SourceContext(TinyTeacher(), None, 1))
    with pytest.raises(CocomixError, match="k_attr must be >= 1"):
        CONCEPT_SOURCES.build("activation", ActivationConfig(k_attr=0), _context())


def test_activation_source() -> None:
    context = _context()
    source = CONCEPT_SOURCES.build("activation", ActivationConfig(k_attr=2), context)
    tokens = _tokens()
    labels = source.targets(tokens).labels
    with torch.no_grad():
        code = context.sae.encode(context.teacher.hidden_at(tokens, 1))
    assert labels is not None and torch.equal(labels, activation_labels(code, 2))
    assert torch.equal(labels, code.indices[..., :2])  # encode sorts by value
    with pytest.raises(CocomixError, match="K_attr=7 is larger than the SAE's k=6"):
        CONCEPT_SOURCES.build("activation", ActivationConfig(k_attr=7), _context())


def test_teacher_hidden_source() -> None:
    teacher = TinyTeacher()
    tokens = _tokens()
    source = CONCEPT_SOURCES.build("teacher_hidden", TeacherHiddenConfig(), SourceContext(teacher, None, 0))
    assert source.num_concepts == 0 and not teacher.training
    hidden = source.targets(tokens).hidden
    assert hidden is not None and hidden.shape == (2, 10, D) and not hidden.requires_grad
    torch.testing.assert_close(hidden.mean(-1), torch.zeros(2, 10), atol=1e-5, rtol=0)
    torch.testing.assert_close(hidden.std(-1), torch.ones(2, 10), atol=1e-3, rtol=0)
    raw = CONCEPT_SOURCES.build("teacher_hidden", TeacherHiddenConfig(normalize=False), SourceContext(teacher, None, 0))
    with torch.no_grad():
        torch.testing.assert_close(raw.targets(tokens).hidden, teacher.hidden_at(tokens, 0))
    assert raw.targets(tokens).labels is None
