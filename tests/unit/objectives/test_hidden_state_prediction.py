"""Direct hidden-state prediction (Fig. 6b; brief §2.4): l1/l2/cosine terms and the objective."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from cocomix.concepts.hidden_head import HiddenStateHead
from cocomix.concepts.sources import ConceptBatch
from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.objectives.base import ObjectiveContext
from cocomix.objectives.cocomix import CoCoMix, CoCoMixConfig
from cocomix.objectives.hidden_state_prediction import (
    HiddenStatePrediction,
    HiddenStatePredictionConfig,
)
from cocomix.objectives.terms import hidden_state_loss, next_token_loss
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import TokenBatch

B, T, V, D_CON = 2, 8, 97, 24


class HiddenSource:
    def __init__(self, hidden: Tensor | None, hidden_dim: int = D_CON) -> None:
        self.hidden = hidden
        self.hidden_dim = hidden_dim
        self.num_concepts = 0

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        return ConceptBatch(hidden=self.hidden)


class LabelSource:
    num_concepts = 50

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        return ConceptBatch(labels=torch.zeros(B, T, 2, dtype=torch.long))


def model(mixer: str = "interleave", teacher_dim: int = D_CON, seed: int = 0) -> CocoMixLM:
    torch.manual_seed(seed)
    config = CocoLMConfig(model_dim=32, num_layers=3, num_heads=4, ffn_inner_dim=128,
                          vocab_size=V, max_seq_len=32, insert_layer=1, mixer=mixer,
                          concept_head="hidden", teacher_dim=teacher_dim, concept_mlp_hidden=48)
    return create_cocomix_lm(config).eval()


def batch() -> TokenBatch:
    return TokenBatch(torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1)))


def targets() -> Tensor:
    return torch.randn(B, T, D_CON, generator=torch.Generator().manual_seed(3))


def objective(student: CocoMixLM | None = None, source: object = None,
              **options: object) -> HiddenStatePrediction:
    config = HiddenStatePredictionConfig(**options)  # type: ignore[arg-type]
    context = ObjectiveContext(student=student, concept_source=source or HiddenSource(targets()))
    return HiddenStatePrediction(config, context)


def test_loss_of_a_vector_with_itself_is_zero() -> None:
    x = torch.randn(3, 4, 7)
    for kind in ("l1", "l2", "cosine"):
        assert hidden_state_loss(x, x.clone(), kind).item() == pytest.approx(0.0, abs=1e-6)
    # Cosine is scale-free: a positive multiple is still distance 0.
    assert hidden_state_loss(3.0 * x, x, "cosine").item() == pytest.approx(0.0, abs=1e-6)


def test_hand_values() -> None:
    pred = torch.tensor([[[1.0, 2.0], [0.0, 1.0]]])  # two positions, d_con = 2
    tgt = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    # l1: |0|,|2|,|-1|,|1| -> 4 / 4 elements; l2: 0,4,1,1 -> 6 / 4 (mean over elements).
    assert hidden_state_loss(pred, tgt, "l1").item() == pytest.approx(1.0)
    assert hidden_state_loss(pred, tgt, "l2").item() == pytest.approx(1.5)
    # cosine: position 1: 1 - 1/sqrt5; position 2: orthogonal, 1 - 0; mean.
    expected = ((1 - 1 / 5**0.5) + 1.0) / 2
    assert hidden_state_loss(pred, tgt, "cosine").item() == pytest.approx(expected, abs=1e-6)
    # Opposite vectors are at the maximal distance 2.
    assert hidden_state_loss(-tgt, tgt, "cosine").item() == pytest.approx(2.0)
    with pytest.raises(CocomixError, match="unknown hidden-state loss 'l3'"):
        hidden_state_loss(pred, tgt, "l3")
    with pytest.raises(CocomixError, match="set model.teacher_dim"):
        hidden_state_loss(pred, tgt[..., :1], "l2")


@pytest.mark.parametrize("kind", ["l1", "l2", "cosine"])
def test_objective_is_lm_plus_lambda_hidden_loss(kind: str) -> None:
    student, b, y = model(), batch(), targets()
    out = objective(student, HiddenSource(y), lam=0.3, loss=kind).compute(student, b)
    lm_out = student.forward_lm(b.inputs)
    assert lm_out.concept_prediction is not None and lm_out.concept_logits is None
    expected = next_token_loss(lm_out.logits, b.targets) + 0.3 * hidden_state_loss(
        lm_out.concept_prediction, y, kind)
    torch.testing.assert_close(out.loss, expected)
    assert set(out.metrics) == set(HiddenStatePrediction.contract.metric_names()) == {"loss_lm", "loss_hidden"}


def test_gradients_reach_the_mlp_and_the_compressor() -> None:
    student = model().train()
    objective(student).compute(student, batch()).loss.backward()
    head = student.concept_head
    assert isinstance(head, HiddenStateHead)
    missing = [n for n, p in student.named_parameters() if p.grad is None]
    assert missing == []


def test_declarations() -> None:
    cls = HiddenStatePrediction
    assert cls.contract.concept_head and cls.contract.concept_source
    assert cls.contract.concept_compressor and cls.contract.implied_mixer == "interleave"
    assert not cls.contract.teacher
    assert OBJECTIVES.get("hidden_state_prediction").factory is cls
    overrides = cls.contract.overrides(HiddenStatePredictionConfig(mlp_hidden=64))
    assert overrides == {"concept_head": "hidden", "concept_mlp_hidden": 64}
    assert CoCoMix.contract.overrides(CoCoMixConfig()) == {}


def test_clear_errors() -> None:
    with pytest.raises(CocomixError, match="^objective=hidden_state_prediction needs "
                                           "concepts=teacher_hidden$"):
        objective(source=LabelSource())
    with pytest.raises(CocomixError, match="needs concepts=teacher_hidden"):
        HiddenStatePrediction(HiddenStatePredictionConfig(), ObjectiveContext())
    with pytest.raises(CocomixError, match="objective.loss='huber'; choose one of l1, l2, cosine"):
        objective(loss="huber")
    with pytest.raises(CocomixError, match="objective.lam=-0.5 must be >= 0"):
        objective(lam=-0.5)
    with pytest.raises(CocomixError, match="mlp_hidden=-1 must be >= 0"):
        objective(mlp_hidden=-1)
    with pytest.raises(CocomixError, match="model.teacher_dim=24 .* the student has "
                                           "concept_head=hidden, teacher_dim=16"):
        objective(model(teacher_dim=16))
    with pytest.raises(CocomixError, match="defined with mixer=interleave"):
        objective(model(mixer="none"))
    # A source that stops giving hidden states mid-run, and a student without the hidden head.
    student = model()
    with pytest.raises(CocomixError, match="needs concepts=teacher_hidden"):
        objective(student, HiddenSource(None)).compute(student, batch())
    student.concept_head = None
    student.mixer = create_cocomix_lm(CocoLMConfig(vocab_size=V)).mixer
    with pytest.raises(CocomixError, match="needs a student with a hidden-state head"):
        objective().compute(student, batch())


def test_cocomix_refuses_the_hidden_head_clearly() -> None:
    # The prediction travels in its own field, so CoCoMix never reads d_con numbers as logits.
    student = model()
    context = ObjectiveContext(concept_source=LabelSource())
    cocomix = CoCoMix(CoCoMixConfig(), context)
    with pytest.raises(CocomixError, match="objective=cocomix needs a student with a concept head"):
        cocomix.compute(student, batch())
