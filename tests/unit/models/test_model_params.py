"""Parameter counts against the paper brief's table (§3, §2.7) and GPT-2's initialisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from fairseq2.nn.utils.module import to_device
from torch import nn

from cocomix.models import CocoLMConfig, CocoMixLM, count_parameters, create_cocomix_lm
from cocomix.registry import ARCHS

NUM_CONCEPTS, TOP_K = 32768, 32  # C and K of the paper's concept head (brief §3)


def meta_count(name: str) -> int:
    """Build on the meta device: exact counts without allocating 5 GB for the 1.38B model."""
    model = create_cocomix_lm(ARCHS.get(name).default_config(), device=torch.device("meta"))
    return count_parameters(model)[0]


def gpt2_formula(c: CocoLMConfig) -> int:
    d = c.model_dim
    per_block = 4 * d * d + 4 * d + 2 * d * c.ffn_inner_dim + c.ffn_inner_dim + d + 4 * d
    return c.vocab_size * d + c.max_seq_len * d + c.num_layers * per_block + 2 * d


@pytest.mark.parametrize(
    "name, millions",
    [
        ("gpt2_69m_ntp", 69.4),   # brief §3, "NTP params (widened)"
        ("gpt2_386m_ntp", 386.3),
        ("gpt2_1b_ntp", 1373.4),
        ("gpt2_69m", 51.5),       # brief §2.7: the d=512 base, "53M" in Fig. 6d
        ("gpt2_124m", 124.4),     # GPT-2 small, the concept-extraction teacher (brief §1.1)
    ],
)
def test_parameter_counts_match_the_brief(name: str, millions: float) -> None:
    assert abs(meta_count(name) / 1e6 - millions) <= 0.1


@pytest.mark.parametrize(
    "name, active_millions",
    [("gpt2_69m", 68.3), ("gpt2_386m", 388.4), ("gpt2_1b", 1380.8)],
)
def test_cocomix_bases_give_the_briefs_active_counts(name: str, active_millions: float) -> None:
    # "Active" = base + (C + K)·d (brief §3): checks the 512/1024/2048 bases as well.
    d = ARCHS.get(name).default_config().model_dim
    assert abs((meta_count(name) + (NUM_CONCEPTS + TOP_K) * d) / 1e6 - active_millions) <= 0.1


@pytest.mark.parametrize("name", ["tiny", "gpt2_69m", "gpt2_69m_ntp", "gpt2_386m"])
def test_counts_equal_gpt2_formula(name: str) -> None:
    assert meta_count(name) == gpt2_formula(ARCHS.get(name).default_config())


def test_tiny_is_about_1_8m() -> None:
    assert 1.8e6 <= meta_count("tiny") <= 1.9e6


def test_head_is_tied_and_counted_once(small_model: CocoMixLM) -> None:
    assert small_model.final_proj.weight is small_model.decoder_frontend.embed.weight
    total, active = count_parameters(small_model)
    assert total == active == gpt2_formula(small_model.config)


def test_active_count_hook_for_a_concept_head(small_model: CocoMixLM) -> None:
    class FakeHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(10, 32))

        def inactive_parameter_count(self) -> int:
            return 200

    base, _ = count_parameters(small_model)
    small_model.concept_head = FakeHead()
    assert count_parameters(small_model) == (base + 320, base + 120)


def _check_gpt2_init(model: CocoMixLM) -> None:
    c = model.config
    std, out_std = c.init_std, c.init_std / math.sqrt(2 * c.num_layers)

    def close(t: torch.Tensor, expected: float) -> None:
        assert abs(t.float().std().item() - expected) < 0.08 * expected
        assert abs(t.float().mean().item()) < 0.1 * expected

    close(model.decoder_frontend.embed.weight, std)
    close(model.decoder_frontend.pos_encoder.weight, std)
    for layer in model.layers:
        attn, ffn = layer.self_attn, layer.ffn
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj, ffn.inner_proj):
            close(proj.weight, std)
        for proj in (attn.output_proj, ffn.output_proj):  # residual writes: 1/sqrt(2L)
            close(proj.weight, out_std)
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj, attn.output_proj,
                     ffn.inner_proj, ffn.output_proj):
            assert proj.bias is not None and torch.all(proj.bias == 0)
        for ln in (layer.self_attn_layer_norm, layer.ffn_layer_norm):
            assert torch.all(ln.weight == 1) and torch.all(ln.bias == 0)
    assert torch.all(model.layer_norm.weight == 1) and torch.all(model.layer_norm.bias == 0)


def test_init_statistics() -> None:
    torch.manual_seed(0)
    _check_gpt2_init(create_cocomix_lm(ARCHS.get("tiny").default_config()))


def test_meta_materialisation_gives_the_same_init() -> None:
    # fairseq2 builds on meta, then calls each module's reset_parameters (to_device / FSDP).
    torch.manual_seed(0)
    model = create_cocomix_lm(ARCHS.get("tiny").default_config(), device=torch.device("meta"))
    to_device(model, torch.device("cpu"))
    assert model.final_proj.weight is model.decoder_frontend.embed.weight
    _check_gpt2_init(model)


def test_dtype_argument(small_config: Callable[..., CocoLMConfig]) -> None:
    model = create_cocomix_lm(small_config(), dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
