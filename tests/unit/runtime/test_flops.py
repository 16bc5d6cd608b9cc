"""FLOP accounting: a hand count on a tiny config, and the paper brief's §6.3 table."""

from __future__ import annotations

import dataclasses

import pytest

from cocomix.runtime.flops import (
    TeacherCost,
    student_forward_flops,
    teacher_flops,
    training_flops_per_step,
    training_flops_per_token,
)
from cocomix.models import CocoLMConfig
from cocomix.models.archs import ARCH_PRESETS
from cocomix.registry import CocomixError

TINY = CocoLMConfig(model_dim=8, num_layers=2, num_heads=2, ffn_inner_dim=16, vocab_size=10,
                    max_seq_len=8, insert_layer=1, mixer="interleave", num_concepts=20,
                    concept_topk=3)


def test_hand_count_of_a_tiny_interleaved_model_with_teacher() -> None:
    # One block's weights: 2 * (4 * 8 * 8 + 2 * 8 * 16) = 1024 per position; attention 4 * ctx * 8.
    parts = student_forward_flops(TINY, seq_len=4)
    assert parts == {
        "lower_blocks": 1 * (1024 + 4 * 4 * 8),          # 1152
        "upper_blocks": 1 * 2 * (1024 + 4 * 8 * 8),      # doubled: 2 positions, context 8
        "lm_head": 2 * 10 * 8,                           # on T positions only
        "concept_predictor": 2 * 8 * 20,                 # dense d x C
        "concept_compressor": 2 * 8 * 3,                 # k gathered columns
    }
    teacher = TeacherCost(model_dim=8, num_layers=3, ffn_inner_dim=16, vocab_size=10, layer=1,
                          mode="attribution", sae_latents=20, sae_k=3)
    t = teacher_flops(teacher, seq_len=4)
    block = 1024 + 4 * 4 * 8
    assert t == {"teacher_forward": 3 * block + 160, "teacher_backward": 1 * block + 160,
                 "sae_encoder": 2 * 8 * 20, "attribution": 2 * 8 * 3}
    count = training_flops_per_token(TINY, 4, teacher=teacher)
    assert count.total == 3 * (1152 + 2560 + 160 + 320 + 48) + sum(t.values())
    assert training_flops_per_step(TINY, 4, 100, teacher=teacher) == count.total * 100


def test_prediction_only_and_hidden_heads() -> None:
    no_compressor = dataclasses.replace(TINY, mixer="none", concept_compress=False)
    assert "concept_compressor" not in student_forward_flops(no_compressor, 4)
    hidden = dataclasses.replace(TINY, concept_head="hidden", num_concepts=0, teacher_dim=6,
                                 concept_mlp_hidden=12, mixer="add")
    parts = student_forward_flops(hidden, 4)
    assert parts["concept_predictor"] == 2 * (8 * 12 + 12 * 6)
    assert parts["concept_compressor"] == 2 * 6 * 8
    assert parts["upper_blocks"] == 1024 + 4 * 4 * 8  # add: no doubling


GPT2_124M = ARCH_PRESETS["gpt2_124m"]()


@pytest.mark.parametrize(
    ("arch", "mixer", "concepts", "gflop"),
    [
        ("gpt2_69m_ntp", "none", 0, 0.47),     # NTP (widened)
        ("gpt2_69m", "interleave", 32768, 0.75),  # CoCoMix student, dense compressor
        ("gpt2_69m_ntp", "pause", 0, 0.73),    # pause (widened, doubled)
        ("gpt2_386m_ntp", "none", 0, 2.63),
        ("gpt2_386m", "interleave", 32768, 4.98),
        ("gpt2_1b_ntp", "none", 0, 8.84),
        ("gpt2_1b", "interleave", 32768, 16.45),
    ],
)
def test_reproduces_the_brief_table(arch: str, mixer: str, concepts: int, gflop: float) -> None:
    config = dataclasses.replace(ARCH_PRESETS[arch](), mixer=mixer, num_concepts=concepts,
                                 concept_topk=32)
    total = training_flops_per_token(config, 1024, dense_compressor=True).total
    assert total / 1e9 == pytest.approx(gflop, abs=0.006)


def test_teacher_and_kd_rows_of_the_brief_table() -> None:
    # "+ teacher/SAE" = 0.96: GPT-2 124M 3x forward (the official full backward), SAE encoder and
    # a dense attribution matmul, both 768 x 32768.
    official = TeacherCost.from_config(GPT2_124M, 5, mode="official", sae_latents=32768, sae_k=32,
                                       attribution_dense=True)
    assert sum(teacher_flops(official, 1024).values()) / 1e9 == pytest.approx(0.96, abs=0.006)
    # KD = NTP + one teacher forward: 0.76.
    kd = training_flops_per_token(ARCH_PRESETS["gpt2_69m_ntp"](), 1024,
                                  teacher=TeacherCost.from_config(GPT2_124M, 5, mode="forward"))
    assert kd.total / 1e9 == pytest.approx(0.76, abs=0.006)
    # Our attribution (input gradients only, gathered k columns) is cheaper than the official.
    ours = TeacherCost.from_config(GPT2_124M, 5, sae_latents=32768, sae_k=32)
    assert sum(teacher_flops(ours, 1024).values()) < 0.75 * sum(teacher_flops(official, 1024).values())


def test_sparse_compressor_saving_matches_the_brief() -> None:
    config = dataclasses.replace(ARCH_PRESETS["gpt2_69m"](), mixer="interleave",
                                 num_concepts=32768, concept_topk=32)
    dense = sum(student_forward_flops(config, 1024, dense_compressor=True).values())
    sparse = sum(student_forward_flops(config, 1024).values())
    assert 1 - sparse / dense == pytest.approx(0.14, abs=0.01)  # "drops by ~14% (69M)"


def test_errors() -> None:
    with pytest.raises(CocomixError, match="mode"):
        TeacherCost(8, 2, 16, 10, 0, mode="magic")
    with pytest.raises(CocomixError, match="outside"):
        TeacherCost(8, 2, 16, 10, 2)
    with pytest.raises(CocomixError):
        student_forward_flops(dataclasses.replace(TINY, mixer="no_such_mixer"), 4)
