"""Steering: scale 1 is exactly neutral; scale 0 is neutral only where the concept stays out of
the top-k; a model without a concept head is refused."""

from __future__ import annotations

import pytest
import torch

from cocomix.analysis.steering import require_fits_context, steer_generate, steering
from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.registry import CocomixError


def model_with_head(mixer: str = "interleave") -> CocoMixLM:
    torch.manual_seed(0)
    config = CocoLMConfig(model_dim=32, num_layers=2, num_heads=2, ffn_inner_dim=64,
                          vocab_size=50, max_seq_len=32, insert_layer=1, mixer=mixer,
                          num_concepts=12, concept_topk=3)
    return create_cocomix_lm(config).eval()


PROMPT = torch.tensor([[3, 14, 15, 9, 2]])


@pytest.mark.parametrize("greedy", [True, False])
def test_scale_one_equals_unsteered_generation(greedy: bool) -> None:
    model = model_with_head()
    result = steer_generate(model, PROMPT, concept=5, scale=1.0, max_new_tokens=12,
                            greedy=greedy, seed=7)
    assert result.steered.tokens == result.unsteered.tokens
    assert result.steered.topk_hits == result.unsteered.topk_hits
    assert model.concept_head.steer is None  # restored


def bias_concepts(model: CocoMixLM, values: dict[int, float]) -> None:
    """Make the concept logits input-independent: zero predictor weights, chosen biases."""
    predictor = model.concept_head.predictor  # type: ignore[union-attr]
    with torch.no_grad():
        predictor.weight.zero_()
        predictor.bias.fill_(1.0)
        for concept, value in values.items():
            predictor.bias[concept] = value


def test_scale_zero_is_neutral_only_outside_a_positive_top_k() -> None:
    model = model_with_head()
    # Every kept logit is positive (concepts 0-2 at 5.0, the rest 1.0) and concept 7 sits at -4:
    # zeroing it keeps it out of the top-k, so nothing changes.
    bias_concepts(model, {0: 5.0, 1: 5.0, 2: 5.0, 7: -4.0})
    out = steer_generate(model, PROMPT, concept=7, scale=0.0, max_new_tokens=10, greedy=True)
    assert out.steered.tokens == out.unsteered.tokens and out.steered.topk_hits == 0
    with torch.no_grad(), steering(model, None):
        base = model.forward_lm(PROMPT).logits
    with torch.no_grad(), steering(model, 7, 0.0):
        assert torch.equal(model.forward_lm(PROMPT).logits, base)
    # A concept in the top-k, scaled to 0, changes the mixed-in concept and so the logits.
    with torch.no_grad(), steering(model, 0, 0.0):
        assert not torch.allclose(model.forward_lm(PROMPT).logits, base)
    # When the k-th logit is negative, zeroing a very negative concept pulls it *into* the top-k.
    bias_concepts(model, {c: -2.0 for c in range(12)} | {7: -9.0})
    with torch.no_grad(), steering(model, 7, 0.0):
        z = model.forward_lm(PROMPT).concept_logits
    assert z is not None and bool((torch.topk(z, 3, -1).indices == 7).any(-1).all())


def test_large_scale_switches_a_concept_on() -> None:
    model = model_with_head("add")
    bias_concepts(model, {0: 5.0, 1: 5.0, 2: 5.0, 9: 2.0})
    result = steer_generate(model, PROMPT, concept=9, scale=10.0, max_new_tokens=6, greedy=True)
    assert result.unsteered.topk_hits == 0
    assert result.steered.topk_hits == result.steered.positions


def test_errors() -> None:
    torch.manual_seed(0)
    plain = create_cocomix_lm(CocoLMConfig(model_dim=16, num_layers=1, num_heads=2,
                                           ffn_inner_dim=32, vocab_size=20, insert_layer=0)).eval()
    with pytest.raises(CocomixError, match="no concept head"):
        steer_generate(plain, PROMPT % 20, concept=0, scale=2.0, max_new_tokens=2)
    with pytest.raises(CocomixError, match="outside"):
        steer_generate(model_with_head(), PROMPT, concept=12, scale=2.0, max_new_tokens=2)
    with pytest.raises(CocomixError, match="concept prediction only"):
        steer_generate(model_with_head("none"), PROMPT, concept=1, scale=2.0, max_new_tokens=2)


@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_scale_is_refused(scale: float, greedy: bool) -> None:
    # Before: NaN logits, so greedy decoding "steered" to token 0 and sampling raised in torch.
    model = model_with_head()
    with pytest.raises(CocomixError, match=r"scale -?(nan|inf) is not a finite number; give a finite"):
        steer_generate(model, PROMPT, concept=5, scale=scale, max_new_tokens=4, greedy=greedy)
    assert model.concept_head.steer is None


@pytest.mark.parametrize("greedy", [True, False])
def test_a_finite_scale_that_overflows_the_model_is_refused(greedy: bool) -> None:
    model = model_with_head()
    with pytest.raises(CocomixError, match=r"concept 5 x 1e\+30 overflows the model .*use a smaller scale"):
        steer_generate(model, PROMPT, concept=5, scale=1e30, max_new_tokens=4, greedy=greedy)
    assert model.concept_head.steer is None
    # A large scale the model still computes with is kept (the paper's range is -10..10).
    steer_generate(model, PROMPT, concept=5, scale=1e4, max_new_tokens=4, greedy=greedy)


def test_the_context_rule_names_the_limit_and_the_fix() -> None:
    require_fits_context(64, 64, what="--text", fix="shorten it")
    with pytest.raises(CocomixError) as info:
        require_fits_context(65, 64, what="--text", fix="shorten it to at most 64 tokens")
    assert str(info.value) == ("--text is 65 tokens, more than the run's trained context "
                               "(train.seq_len=64); shorten it to at most 64 tokens")
