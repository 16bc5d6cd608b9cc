"""Fixtures for the evaluation tests: a small SentencePiece model trained on a few hundred kB of
the shipped English text, tiny models built in-process, and stub models with chosen logits.

Helpers are handed out as fixtures (not imported from here) so the tests work under any pytest
import mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.data.tokenizers import Tokenizer
from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm
from cocomix.types import ModelOutput


@pytest.fixture(scope="session")
def tokenizer(spm_path: Path) -> Tokenizer:
    return load_tokenizer(spm_path)


@pytest.fixture
def tiny_lm(tokenizer: Tokenizer) -> Callable[..., CocoMixLM]:
    """``tiny_lm(**overrides)``: a 2-block, 32-wide model over the test tokenizer, eval mode."""

    def make(**overrides: object) -> CocoMixLM:
        base: dict[str, object] = dict(
            model_dim=32, num_layers=2, num_heads=2, ffn_inner_dim=64,
            vocab_size=tokenizer.vocab_size, max_seq_len=64, insert_layer=1,
        )
        base.update(overrides)
        torch.manual_seed(0)
        return create_cocomix_lm(CocoLMConfig(**base)).eval()  # type: ignore[arg-type]

    return make


class StubLM(nn.Module):
    """Same logits at every position: ``bias`` (V,); records each input it is given."""

    def __init__(self, bias: Tensor) -> None:
        super().__init__()
        self.bias = bias.float()
        self.inputs: list[Tensor] = []

    def forward_lm(self, tokens: Tensor) -> ModelOutput:
        self.inputs.append(tokens.clone())
        logits = self.bias.expand(*tokens.shape, -1).clone()
        return ModelOutput(logits=logits)


@pytest.fixture
def stub_lm() -> Callable[..., StubLM]:
    """``stub_lm(vocab_size, favour={token: boost})``."""

    def make(vocab_size: int, favour: dict[int, float] | None = None) -> StubLM:
        bias = torch.zeros(vocab_size)
        for token, boost in (favour or {}).items():
            bias[token] = boost
        return StubLM(bias)

    return make
