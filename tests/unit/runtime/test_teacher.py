"""Teachers behind the TeacherLM protocol: a local HF GPT-2 and a trained cocomix_lm run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cocomix.registry import CocomixError
from cocomix.runtime.checkpoint import load_trained_lm
from cocomix.runtime.teacher import HFGPT2Teacher, check_teacher_vocab
from cocomix.types import TeacherLM


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised GPT-2 saved locally in HF format (nothing downloaded)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=3, n_head=4)
    path = tmp_path_factory.mktemp("gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(path)
    return path


def test_hf_gpt2_teacher_splits_the_forward_pass_exactly(gpt2_dir: Path) -> None:
    from transformers import GPT2LMHeadModel

    teacher = HFGPT2Teacher(gpt2_dir)
    assert isinstance(teacher, TeacherLM)
    assert (teacher.num_layers, teacher.model_dim, teacher.vocab_size) == (3, 32, 97)
    tokens = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    reference = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()(tokens).logits
    with torch.no_grad():
        for layer in range(3):
            h = teacher.hidden_at(tokens, layer)
            assert h.shape == (2, 9, 32)
            assert torch.allclose(teacher.logits_from(h, layer), reference, atol=1e-5)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_missing_teacher_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CocomixError, match="has no config.json"):
        HFGPT2Teacher(tmp_path)
    with pytest.raises(CocomixError, match="no complete checkpoint"):
        load_trained_lm(tmp_path)
    with pytest.raises(CocomixError, match="teacher's vocabulary \\(50257\\) differs"):
        check_teacher_vocab(50257, 8000)
