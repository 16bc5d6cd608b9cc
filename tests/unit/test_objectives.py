"""Objective loss math on hand-made cases (plain torch, no runtime)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cocomix.concepts.sources import ConceptBatch
from cocomix.objectives.base import ObjectiveContext
from cocomix.objectives.cocomix import CoCoMix, CoCoMixConfig
from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig
from cocomix.objectives.terms import concept_hit_rate, concept_loss, next_token_loss
from cocomix.registry import CocomixError
from cocomix.types import ModelOutput, TokenBatch

B, T, V, C = 2, 5, 11, 7


class FixedModel:
    """Returns fixed logits, so the expected losses can be computed by hand."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.logits = torch.randn(B, T, V, generator=g)
        self.concepts = torch.randn(B, T, C, generator=g)

    def forward_lm(self, tokens: torch.Tensor) -> ModelOutput:
        assert tokens.shape == (B, T)
        return ModelOutput(logits=self.logits, concept_logits=self.concepts)


class FixedSource:
    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels

    def targets(self, tokens: torch.Tensor, *, sample_index: torch.Tensor | None = None) -> ConceptBatch:
        return ConceptBatch(labels=self.labels)


def batch() -> TokenBatch:
    return TokenBatch(torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1)))


def test_concept_loss_is_the_mean_of_per_label_cross_entropies() -> None:
    z = torch.randn(B, T, C)
    labels = torch.randint(0, C, (B, T, 3))
    expected = sum(F.cross_entropy(z.flatten(0, 1), labels[..., i].flatten()) for i in range(3)) / 3
    assert torch.allclose(concept_loss(z, labels), expected, atol=1e-6)


def test_hit_rate_counts_labels_inside_the_top_k() -> None:
    z = torch.tensor([[[5.0, 4.0, 3.0, 0.0, -1.0]]])
    assert concept_hit_rate(z, torch.tensor([[[0, 1]]]), k=2).item() == 1.0
    assert concept_hit_rate(z, torch.tensor([[[0, 4]]]), k=2).item() == 0.5


def test_ntp_is_shifted_cross_entropy() -> None:
    model, b = FixedModel(), batch()
    out = NextTokenPrediction(NtpConfig()).compute(model, b)
    assert torch.allclose(out.loss, F.cross_entropy(model.logits.flatten(0, 1), b.targets.flatten()))
    assert out.num_targets == B * T and "loss_lm" in out.metrics


def test_cocomix_adds_lambda_times_concept_loss() -> None:
    model, b = FixedModel(), batch()
    labels = torch.randint(0, C, (B, T, 2))
    context = ObjectiveContext(concept_source=FixedSource(labels))
    out = CoCoMix(CoCoMixConfig(lam=0.3), context).compute(model, b)
    lm = next_token_loss(model.logits, b.targets)
    concept = concept_loss(model.concepts, labels)
    assert torch.allclose(out.loss, lm + 0.3 * concept)
    assert torch.allclose(out.metrics["loss_lm"], lm) and torch.allclose(out.metrics["loss_concept"], concept)
    assert 0.0 <= out.metrics["concept_acc"].item() <= 1.0


def test_cocomix_without_a_concept_source_is_a_clear_error() -> None:
    with pytest.raises(CocomixError, match="needs a concept source"):
        CoCoMix(CoCoMixConfig(), ObjectiveContext())
