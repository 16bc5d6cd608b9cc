"""Fig. 6d's components (brief §2.7): concept prediction only and concept mixing only."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from cocomix.concepts.head import ConceptHead
from cocomix.concepts.sources import ConceptBatch
from cocomix.models import CocoLMConfig, CocoMixLM, count_parameters, create_cocomix_lm
from cocomix.objectives.base import ObjectiveContext
from cocomix.objectives.cocomix import CoCoMix
from cocomix.objectives.concept_mixing_only import (
    ConceptMixingOnly,
    ConceptMixingOnlyConfig,
)
from cocomix.objectives.concept_prediction_only import (
    ConceptPredictionOnly,
    ConceptPredictionOnlyConfig,
)
from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig
from cocomix.objectives.terms import concept_loss, next_token_loss
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import TokenBatch

B, T, V, C, K = 2, 8, 97, 40, 4


class FixedSource:
    def __init__(self, labels: Tensor) -> None:
        self.labels = labels

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        return ConceptBatch(labels=self.labels)


def model(mixer: str, compress: bool, seed: int = 0) -> CocoMixLM:
    torch.manual_seed(seed)
    config = CocoLMConfig(model_dim=32, num_layers=3, num_heads=4, ffn_inner_dim=128,
                          vocab_size=V, max_seq_len=32, insert_layer=1, mixer=mixer,
                          num_concepts=C, concept_topk=K, concept_compress=compress)
    return create_cocomix_lm(config).eval()


def batch() -> TokenBatch:
    return TokenBatch(torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1)))


def labels() -> Tensor:
    return torch.randint(0, C, (B, T, 2), generator=torch.Generator().manual_seed(2))


def test_prediction_only_is_ntp_plus_lambda_concept_loss() -> None:
    student, b, y = model("none", compress=False), batch(), labels()
    head = student.concept_head
    assert isinstance(head, ConceptHead) and head.compressor is None
    context = ObjectiveContext(student=student, concept_source=FixedSource(y))
    out = ConceptPredictionOnly(ConceptPredictionOnlyConfig(lam=0.2), context).compute(student, b)
    lm_out = student.forward_lm(b.inputs)
    ntp = NextTokenPrediction(NtpConfig()).compute(student, b).loss
    assert lm_out.concept_logits is not None
    torch.testing.assert_close(out.loss, ntp + 0.2 * concept_loss(lm_out.concept_logits, y))
    assert set(out.metrics) == {"loss_lm", "loss_concept", "concept_acc"}
    # The head is an auxiliary output: the LM logits are a plain GPT-2's (brief §2.7).
    plain = model("none", compress=False)
    plain.concept_head = None
    torch.testing.assert_close(lm_out.logits, plain.forward_lm(b.inputs).logits)


def test_prediction_only_head_counts_as_inactive() -> None:
    student = model("none", compress=False)
    total, active = count_parameters(student)
    assert total - active == 32 * C + C + 32  # predictor (d·C + C) + pre_bias (d)
    student.concept_head = None
    assert count_parameters(student) == (active, active)


def test_prediction_only_declarations_and_checks() -> None:
    assert ConceptPredictionOnly.contract.implied_mixer == "none"
    assert not ConceptPredictionOnly.contract.concept_compressor
    assert ConceptPredictionOnly.contract.concept_head
    assert ConceptPredictionOnly.contract.concept_source
    assert OBJECTIVES.get("concept_prediction_only").factory is ConceptPredictionOnly
    source = FixedSource(labels())
    with pytest.raises(CocomixError,
                       match="objective=concept_prediction_only needs a concept source"):
        ConceptPredictionOnly(ConceptPredictionOnlyConfig(), ObjectiveContext())
    with pytest.raises(CocomixError, match="lam=-1.0 must be >= 0"):
        ConceptPredictionOnly(ConceptPredictionOnlyConfig(lam=-1.0),
                              ObjectiveContext(concept_source=source))
    with_compressor = model("none", compress=True)
    with pytest.raises(CocomixError, match="head without compressor; the student was built with "
                                           "model.concept_compress=true"):
        ConceptPredictionOnly(ConceptPredictionOnlyConfig(),
                              ObjectiveContext(student=with_compressor, concept_source=source))
    mixing = model("interleave", compress=True)
    with pytest.raises(CocomixError, match="defined with mixer=none, but the student was built "
                                           "with mixer=interleave"):
        ConceptPredictionOnly(ConceptPredictionOnlyConfig(),
                              ObjectiveContext(student=mixing, concept_source=source))


def test_mixing_only_is_the_lm_loss_on_the_cocomix_architecture() -> None:
    student, b = model("interleave", compress=True), batch()
    objective = ConceptMixingOnly(ConceptMixingOnlyConfig(),
                                  ObjectiveContext(student=student))
    out = objective.compute(student, b)
    lm_out = student.forward_lm(b.inputs)
    torch.testing.assert_close(out.loss, next_token_loss(lm_out.logits, b.targets))
    assert set(out.metrics) == {"loss_lm"}  # no concept term
    # Same loss as CoCoMix with lambda = 0 (given any labels).
    context = ObjectiveContext(concept_source=FixedSource(labels()))
    cocomix = OBJECTIVES.build("cocomix", OBJECTIVES.get("cocomix").config_cls(lam=0.0), context)
    assert isinstance(cocomix, CoCoMix)
    torch.testing.assert_close(cocomix.compute(student, b).loss, out.loss)
    # The LM loss alone trains the predictor through the kept TopK logits (brief §1.4).
    student.train()
    objective.compute(student, b).loss.backward()
    head = student.concept_head
    assert isinstance(head, ConceptHead) and head.predictor.weight.grad is not None
    assert head.predictor.weight.grad.abs().sum() > 0


def test_mixing_only_declarations_and_checks() -> None:
    cls = ConceptMixingOnly
    assert cls.contract.concept_head and not cls.contract.concept_source
    assert cls.contract.implied_mixer == "interleave" and cls.contract.concept_compressor
    assert not cls.contract.teacher
    ConceptMixingOnly(ConceptMixingOnlyConfig(), ObjectiveContext())  # no source needed
    plain = model("none", compress=False)
    with pytest.raises(CocomixError, match="defined with mixer=interleave"):
        ConceptMixingOnly(ConceptMixingOnlyConfig(), ObjectiveContext(student=plain))
    plain.concept_head = None
    with pytest.raises(CocomixError, match="needs a student with a concept head"):
        ConceptMixingOnly(ConceptMixingOnlyConfig()).compute(plain, batch())
