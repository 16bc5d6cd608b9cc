"""Teachers behind the TeacherLM protocol: any Hugging Face causal LM, and a cocomix_lm run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cocomix.concepts.attribution import teacher_grad
from cocomix.registry import CocomixError
from cocomix.runtime.checkpoint import load_trained_lm
from cocomix.runtime.hf_teacher import HFCausalLMTeacher, read_shape, resolve_teacher
from cocomix.runtime.teacher import CocoLMTeacher, check_teacher_vocab
from cocomix.types import TeacherLM

VOCAB = 97


def _families() -> dict[str, object]:
    from transformers import (GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                              LlamaForCausalLM)

    torch.manual_seed(0)
    return {
        "gpt2": GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=3, n_head=4)),
        "gpt_neox": GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3,
                                                     num_attention_heads=4, intermediate_size=64,
                                                     max_position_embeddings=32)),
        "llama": LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3,
                                              num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                              max_position_embeddings=32)),
    }


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Randomly initialised GPT-2, GPT-NeoX (Pythia) and Llama models saved in HF format."""
    root = tmp_path_factory.mktemp("hf_teachers")
    for name, model in _families().items():
        model.eval().save_pretrained(root / name)  # type: ignore[attr-defined]
    return {name: root / name for name in _families()}


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_hf_teacher_reads_the_residual_after_each_block(hf_dirs: dict[str, Path], family: str) -> None:
    from transformers import AutoModelForCausalLM

    teacher = HFCausalLMTeacher(hf_dirs[family])
    assert isinstance(teacher, TeacherLM)
    assert (teacher.num_layers, teacher.model_dim, teacher.vocab_size) == (3, 32, VOCAB)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    reference = AutoModelForCausalLM.from_pretrained(hf_dirs[family]).eval()
    tokens = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = reference(tokens, output_hidden_states=True)
        torch.testing.assert_close(teacher.logits(tokens), out.logits)
        for layer in range(2):  # the last entry of hidden_states has the final norm applied
            torch.testing.assert_close(teacher.hidden_at(tokens, layer), out.hidden_states[layer + 1])
        # An edit at a layer changes what the blocks above see; the identity edit changes nothing.
        torch.testing.assert_close(teacher.logits(tokens, 1, lambda h: h), out.logits)
        zeroed = teacher.logits(tokens, 1, torch.zeros_like)
    assert not torch.allclose(zeroed, out.logits)
    # The residual after the last block is the block's output, before the final norm.
    last = teacher.hidden_at(tokens, 2)
    norm = reference.get_decoder().norm if family == "llama" else (
        reference.gpt_neox.final_layer_norm if family == "gpt_neox" else reference.transformer.ln_f)
    with torch.no_grad():
        torch.testing.assert_close(norm(last), out.hidden_states[3])


def test_hf_teacher_gradient_equals_a_manual_split(hf_dirs: dict[str, Path]) -> None:
    """teacher_grad's one-pass edit gives the gradient of the loss w.r.t. the residual."""
    teacher = HFCausalLMTeacher(hf_dirs["llama"])
    tokens = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))
    h, grad = teacher_grad(teacher, tokens, 1)
    delta = torch.randn_like(h) * 1e-3
    loss = lambda x: torch.nn.functional.cross_entropy(  # noqa: E731
        teacher.logits(tokens, 1, lambda _: x)[:, :-1].reshape(-1, VOCAB).double(), tokens[:, 1:].reshape(-1))
    with torch.no_grad():
        change = loss(h + delta) - loss(h - delta)
    assert change.item() == pytest.approx(2 * (grad * delta).sum().item(), rel=2e-2)


def test_hf_teacher_in_bfloat16(hf_dirs: dict[str, Path]) -> None:
    teacher = HFCausalLMTeacher(hf_dirs["gpt_neox"], dtype="bfloat16")
    assert next(teacher.parameters()).dtype == torch.bfloat16
    assert teacher.hidden_at(torch.zeros(1, 4, dtype=torch.long), 0).dtype == torch.bfloat16


def test_cocomix_teacher_gradient_is_the_two_pass_split_bit_for_bit() -> None:
    """The one-pass attribution gradient equals the earlier hidden_at-then-continue computation
    exactly, so labels and the README demo's numbers do not move."""
    from cocomix.models import CocoLMConfig, create_cocomix_lm

    torch.manual_seed(0)
    lm = create_cocomix_lm(CocoLMConfig(model_dim=32, num_layers=3, num_heads=2, ffn_inner_dim=64,
                                        vocab_size=VOCAB, max_seq_len=32, insert_layer=1))
    teacher = CocoLMTeacher(lm)
    tokens = torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(2))
    h, grad = teacher_grad(teacher, tokens, 1)
    from fairseq2.nn import BatchLayout

    with torch.no_grad():
        ref_h = teacher.hidden_at(tokens, 1)
    leaf = ref_h.detach().requires_grad_(True)
    model = teacher.model
    logits = model.project(model.run_blocks(leaf, BatchLayout.of(leaf), 2, 3))
    targets = torch.nn.functional.pad(tokens[:, 1:], (0, 1), value=-100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB).float(), targets.reshape(-1), ignore_index=-100)
    (ref_grad,) = torch.autograd.grad(loss, leaf)
    assert torch.equal(h, ref_h) and torch.equal(grad, ref_grad)


def test_bad_teachers_are_one_clear_error(hf_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CocomixError, match="is a folder without config.json, so not a Hugging Face causal LM"):
        resolve_teacher(str(tmp_path))
    with pytest.raises(CocomixError, match="does not exist; point teacher.path at a local folder"):
        resolve_teacher(str(tmp_path / "missing"))
    # Tests run with HF_HUB_OFFLINE=1 (tests/conftest.py): a hub name is refused at once.
    with pytest.raises(CocomixError, match="EleutherAI/pythia-160m is not a local folder, so it is a Hugging "
                                           "Face hub name, and the hub cannot be reached \\(HF_HUB_OFFLINE is set\\)"):
        resolve_teacher("EleutherAI/pythia-160m")
    (tmp_path / "bert").mkdir()
    from transformers import BertConfig

    BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(CocomixError, match="cannot load .*bert as a causal LM"):
        HFCausalLMTeacher(tmp_path / "bert")
    assert read_shape(hf_dirs["llama"]).num_layers == 3
    with pytest.raises(CocomixError, match="no complete checkpoint"):
        load_trained_lm(tmp_path)
    with pytest.raises(CocomixError, match="teacher's vocabulary \\(50257\\) differs"):
        check_teacher_vocab(50257, 8000)


def test_gpt2s_gelu_new_runs_as_the_fused_kernel(hf_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Same function, one kernel: logits agree with the checkpoint run as shipped to float rounding."""
    from transformers import GPT2LMHeadModel

    teacher = HFCausalLMTeacher(hf_dirs["gpt2"])
    assert teacher.model.config.activation_function == "gelu_pytorch_tanh"
    assert "gelu_new runs as PyTorch's fused tanh GELU" in capsys.readouterr().out
    shipped = GPT2LMHeadModel.from_pretrained(hf_dirs["gpt2"]).eval()
    assert shipped.config.activation_function == "gelu_new"
    tokens = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(teacher.logits(tokens), shipped(tokens).logits, rtol=1e-5, atol=1e-5)
