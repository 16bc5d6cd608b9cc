"""KV-cache decoding: cached == recomputed, for the plain model and a length-doubling mixer."""

from __future__ import annotations

import pytest
import torch
from fairseq2.nn import BatchLayout, IncrementalStateBag
from torch import Tensor, nn

from cocomix.mixers import Mixer
from cocomix.models import CocoMixLM, generate
from cocomix.registry import CocomixError


class DoublingMixer(Mixer):
    """[h1, p, h2, p, ...] with the LM head on the p slots (pause/interleave-shaped)."""

    length_factor = 2

    def __init__(self, model_dim: int) -> None:
        super().__init__()
        self.pause = nn.Parameter(torch.randn(model_dim) * 0.5)

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        return torch.stack([h, self.pause.expand_as(h)], dim=-2).flatten(-3, -2)

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return x.unflatten(-2, (-1, 2))[..., 1, :]


def prompt(batch: int = 1, length: int = 5) -> Tensor:
    return torch.randint(0, 97, (batch, length), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def greedy_by_recomputation(model: CocoMixLM, x: Tensor, n: int) -> Tensor:
    for _ in range(n):
        logits = model(x, BatchLayout.of(x))
        x = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return x


@torch.no_grad()
def check_incremental_logits(model: CocoMixLM, seq: Tensor, prefill: int) -> None:
    """Feed ``seq[:, :prefill]`` then one token at a time; each step's logits must equal the
    full forward's logits at that position."""
    full = model(seq, BatchLayout.of(seq))
    bag = IncrementalStateBag(seq.size(1) * model.mixer.length_factor + 1)
    first = seq[:, :prefill]
    step_logits = [model(first, BatchLayout.of(first), state_bag=bag)]
    bag.increment_step_nr(prefill)
    for t in range(prefill, seq.size(1)):
        tok = seq[:, t : t + 1]
        step_logits.append(model(tok, BatchLayout.of(tok), state_bag=bag))
        bag.increment_step_nr(1)
    torch.testing.assert_close(torch.cat(step_logits, dim=1), full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
def test_greedy_with_cache_equals_recomputation(small_model: CocoMixLM, batch: int) -> None:
    p = prompt(batch)
    out = generate(small_model, p, 20, greedy=True)
    assert out.shape == (batch, 25)
    assert torch.equal(out[:, :5], p)
    assert torch.equal(out, greedy_by_recomputation(small_model, p, 20))


def test_incremental_logits_equal_full_forward(small_model: CocoMixLM) -> None:
    seq = torch.cat([prompt(2), torch.randint(0, 97, (2, 25))], dim=1)
    check_incremental_logits(small_model, seq, prefill=5)
    check_incremental_logits(small_model, seq, prefill=1)


def test_cache_with_a_length_doubling_mixer(small_model: CocoMixLM) -> None:
    # Two new positions per step attend to 2*(past+1) cached ones: the causal bias must be
    # aligned bottom-right (the official code's SDPA path is not, paper brief §1.6).
    small_model.mixer = DoublingMixer(32)
    seq = torch.cat([prompt(2), torch.randint(0, 97, (2, 20))], dim=1)
    check_incremental_logits(small_model, seq, prefill=4)
    p = prompt()
    assert torch.equal(generate(small_model, p, 12, greedy=True),
                       greedy_by_recomputation(small_model, p, 12))


def test_sampling_is_reproducible_and_top_k_1_is_greedy(small_model: CocoMixLM) -> None:
    p = prompt(2)
    a = generate(small_model, p, 15, generator=torch.Generator().manual_seed(3))
    b = generate(small_model, p, 15, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(generate(small_model, p, 15, top_k=1),
                       generate(small_model, p, 15, greedy=True))
    # A very low temperature is greedy too.
    assert torch.equal(generate(small_model, p, 15, temperature=1e-4),
                       generate(small_model, p, 15, greedy=True))


def test_generate_restores_training_mode(small_model: CocoMixLM) -> None:
    small_model.train()
    generate(small_model, prompt(), 3, greedy=True)
    assert small_model.training


def test_generate_limits(small_model: CocoMixLM) -> None:
    p = prompt(length=60)
    assert generate(small_model, p, 5, greedy=True).shape == (1, 65)  # 64 positions fed
    with pytest.raises(CocomixError, match="max_seq_len=64"):
        generate(small_model, p, 6, greedy=True)
    with pytest.raises(CocomixError, match="temperature"):
        generate(small_model, prompt(), 3, temperature=0.0)
    with pytest.raises(CocomixError, match="top_k"):
        generate(small_model, prompt(), 3, top_k=0)
    assert torch.equal(generate(small_model, prompt(), 0), prompt())
    assert generate(small_model, prompt()[0], 2, greedy=True).shape == (1, 7)
