"""The model with the new heads: ``concept_head=hidden`` (Fig. 6b) and ``concept_compress=false``
("prediction only", Fig. 6d): config checks, outputs, KV-cache decoding, parameter counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch
from fairseq2.nn import BatchLayout, IncrementalStateBag
from fairseq2.nn.utils.module import to_device
from torch import Tensor

from cocomix.concepts.head import ConceptHead
from cocomix.concepts.hidden_head import HiddenStateHead
from cocomix.models import (
    CocoLMConfig,
    CocoMixLM,
    count_parameters,
    create_cocomix_lm,
    generate,
)
from cocomix.registry import ARCHS, CocomixError

V, D_CON, C, K = 97, 24, 50, 4


def tokens(batch: int = 2, length: int = 10, seed: int = 0) -> Tensor:
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def hidden_model(small_config: Callable[..., CocoLMConfig]) -> Callable[..., CocoMixLM]:
    def build(mixer: str = "interleave", **overrides: object) -> CocoMixLM:
        torch.manual_seed(0)
        options: dict[str, object] = {"concept_head": "hidden", "teacher_dim": D_CON}
        options.update(overrides)
        return create_cocomix_lm(small_config(mixer=mixer, **options)).eval()

    return build


def test_config_checks(small_config: Callable[..., CocoLMConfig]) -> None:
    with pytest.raises(CocomixError, match="model.concept_head='mlp'; choose one of hidden, sae"):
        small_config(concept_head="mlp").validate()
    with pytest.raises(CocomixError, match="concept_head=hidden predicts teacher hidden states, "
                                           "not concepts, but model.num_concepts=8"):
        small_config(concept_head="hidden", teacher_dim=8, num_concepts=8).validate()
    with pytest.raises(CocomixError, match="model.teacher_dim=0 builds no hidden-state head"):
        small_config(concept_head="hidden", mixer="interleave").validate()
    with pytest.raises(CocomixError, match="teacher_dim must be a non-negative integer"):
        small_config(teacher_dim=-1).validate()
    with pytest.raises(CocomixError, match="concept_mlp_hidden must be a non-negative integer"):
        small_config(concept_mlp_hidden=-3).validate()
    with pytest.raises(CocomixError, match="concept_compress must be true or false"):
        small_config(concept_compress="no").validate()
    for mixer in ("interleave", "add"):
        with pytest.raises(CocomixError, match=f"mixer '{mixer}' mixes in the compressed concept, "
                                               f"but model.concept_compress=false"):
            small_config(mixer=mixer, num_concepts=8, concept_topk=4,
                         concept_compress=False).validate()
        with pytest.raises(CocomixError, match="concept_compress=false"):
            small_config(mixer=mixer, concept_head="hidden", teacher_dim=8,
                         concept_compress=False).validate()
    # Prediction only (mixer none / pause ignore c_hat) is fine without compressor.
    small_config(num_concepts=8, concept_topk=4, concept_compress=False).validate()
    small_config(mixer="pause", num_concepts=8, concept_topk=4, concept_compress=False).validate()
    assert not small_config(concept_head="hidden", num_concepts=0).has_concept_head
    assert small_config(concept_head="hidden", teacher_dim=8).has_concept_head


@pytest.mark.parametrize("mixer", ["interleave", "add", "none"])
def test_hidden_head_outputs(hidden_model: Callable[..., CocoMixLM], mixer: str) -> None:
    compress = mixer != "none"
    model = hidden_model(mixer, concept_compress=compress, concept_mlp_hidden=40)
    head = model.concept_head
    assert isinstance(head, HiddenStateHead)
    assert (head.teacher_dim, head.mlp_hidden, head.compressor is not None) == (D_CON, 40, compress)
    out = model.forward_lm(tokens())
    assert out.logits.shape == (2, 10, V) and out.concept_logits is None
    assert out.concept_prediction is not None and out.concept_prediction.shape == (2, 10, D_CON)
    assert out.hidden is not None
    torch.testing.assert_close(out.concept_prediction, head(out.hidden)[0])


def test_sae_head_without_compressor_in_the_model(
    small_config: Callable[..., CocoLMConfig],
) -> None:
    torch.manual_seed(0)
    model = create_cocomix_lm(small_config(num_concepts=C, concept_topk=K, concept_compress=False))
    head = model.concept_head
    assert isinstance(head, ConceptHead) and head.compressor is None
    assert not any(k.startswith("concept_head.compressor") for k in model.state_dict())
    out = model.forward_lm(tokens())
    assert out.concept_logits is not None and out.concept_logits.shape == (2, 10, C)
    assert out.concept_prediction is None


def test_hidden_head_interleave_backward_reaches_everything(
    hidden_model: Callable[..., CocoMixLM],
) -> None:
    model = hidden_model().train()
    x = tokens(length=11)
    model(x[:, :-1], BatchLayout.of(x[:, :-1]), x[:, 1:], reduction="mean").backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@torch.no_grad()
def check_incremental_logits(model: CocoMixLM, seq: Tensor, prefill: int) -> None:
    full = model(seq, BatchLayout.of(seq))
    bag = IncrementalStateBag(seq.size(1) * model.mixer.length_factor + 1)
    first = seq[:, :prefill]
    steps = [model(first, BatchLayout.of(first), state_bag=bag)]
    bag.increment_step_nr(prefill)
    for t in range(prefill, seq.size(1)):
        tok = seq[:, t : t + 1]
        steps.append(model(tok, BatchLayout.of(tok), state_bag=bag))
        bag.increment_step_nr(1)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"mixer": "interleave", "concept_head": "hidden", "teacher_dim": D_CON},
        {"mixer": "add", "concept_head": "hidden", "teacher_dim": D_CON},
        {"mixer": "none", "num_concepts": C, "concept_topk": K, "concept_compress": False},
        {"mixer": "pause", "concept_head": "hidden", "teacher_dim": D_CON,
         "concept_compress": False},
    ],
    ids=["hidden-interleave", "hidden-add", "sae-no-compressor", "hidden-no-compressor-pause"],
)
def test_cached_decoding_equals_full_forward(
    small_config: Callable[..., CocoLMConfig], options: dict[str, object]
) -> None:
    torch.manual_seed(0)
    model = create_cocomix_lm(small_config(**options)).eval()
    check_incremental_logits(model, tokens(length=14, seed=1), prefill=3)
    check_incremental_logits(model, tokens(length=9, seed=4), prefill=1)
    prompt = tokens(batch=2, length=4, seed=2)
    out = generate(model, prompt, 8, greedy=True)
    with torch.no_grad():
        ref = prompt
        for _ in range(8):
            logits = model(ref, BatchLayout.of(ref))
            ref = torch.cat([ref, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ref)


def test_meta_materialisation_initialises_the_hidden_head(
    small_config: Callable[..., CocoLMConfig],
) -> None:
    config = small_config(model_dim=128, concept_head="hidden", teacher_dim=96, mixer="interleave")
    model = create_cocomix_lm(config, device=torch.device("meta"))
    to_device(model, torch.device("cpu"))
    head = model.concept_head
    assert isinstance(head, HiddenStateHead) and head.compressor is not None
    for w in (head.inner.weight, head.outer.weight, head.compressor.weight):
        assert abs(w.std().item() - 0.02) < 0.002
    for b in (head.pre_bias, head.inner.bias, head.outer.bias, head.compressor.bias):
        assert torch.all(b == 0)


# -- parameters (brief §2.7, §3) -----------------------------------------------------------------


def _counts(name: str, **overrides: object) -> tuple[int, int]:
    config = dataclasses.replace(ARCHS.get(name).default_config(), **overrides)
    return count_parameters(create_cocomix_lm(config, device=torch.device("meta")))


def test_prediction_only_counts_at_69m() -> None:
    # Fig. 6d: "i) Concept pred" is a 53M model like NTP (our d=512 base: 51.5M). Without
    # compressor the head is pre_bias + predictor (d·C + C) and counts as inactive.
    base, _ = _counts("gpt2_69m")
    assert abs(base / 1e6 - 51.5) <= 0.1
    d, c = 512, 32768
    total, active = _counts("gpt2_69m", num_concepts=c, concept_topk=32, concept_compress=False)
    assert total == base + d * c + c + d
    assert active == base
    # The full CoCoMix head still gives the brief's 85.1M total / 68.3M active.
    total, active = _counts("gpt2_69m", num_concepts=c, concept_topk=32, mixer="interleave")
    assert abs(total / 1e6 - 85.1) <= 0.1 and abs(active / 1e6 - 68.3) <= 0.1


def test_hidden_head_counts_at_69m() -> None:
    base, _ = _counts("gpt2_69m")
    d, d_con, m = 512, 768, 4 * 512
    total, active = _counts("gpt2_69m", concept_head="hidden", teacher_dim=d_con,
                            mixer="interleave")
    head = d + (d * m + m) + (m * d_con + d_con) + (d_con * d + d)
    assert total == active == base + head


def test_a_registered_head_kind_is_built_validated_and_costed(small_config: Callable[..., CocoLMConfig]) -> None:
    """Concept-head kinds are a registry: a plugin kind needs no change to the model code."""
    from cocomix.concepts.head_kinds import CONCEPT_HEADS, SAEConceptHead
    from cocomix.runtime.flops import student_forward_flops

    @CONCEPT_HEADS.register("test_only_sae_twin")
    class Twin(SAEConceptHead):
        @staticmethod
        def validate(config: object) -> None:
            raise CocomixError("twin says no")

    try:
        config = small_config(concept_head="test_only_sae_twin", mixer="interleave", num_concepts=64,
                              concept_topk=4)
        assert config.has_concept_head
        with pytest.raises(CocomixError, match="twin says no"):
            config.validate()
        flops = student_forward_flops(config, 16)
        assert flops["concept_predictor"] == 2.0 * config.model_dim * config.num_concepts
    finally:
        CONCEPT_HEADS._entries.pop("test_only_sae_twin")
