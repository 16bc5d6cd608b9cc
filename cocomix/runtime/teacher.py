"""Frozen teachers (concept-extraction models) behind the `TeacherLM` protocol.

Two kinds: a `cocomix_lm` trained by a recipe (the CPU stand-in for GPT-2 124M, paper §2.1), and
GPT-2 weights in Hugging Face format from a local folder (the paper's teacher when a user has it).
Both are frozen: eval mode, no gradients on parameters, outside the student's optimizer and
checkpoints (they live on the objective's concept source, never on the model).
"""

from __future__ import annotations

from pathlib import Path

import torch
from fairseq2.nn import BatchLayout
from torch import Tensor, nn

from cocomix.data.tokenizers import Tokenizer
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    module.requires_grad_(False)
    return module


class CocoLMTeacher(nn.Module):
    """A trained `cocomix_lm` (mixer `none`) as a `TeacherLM`."""

    def __init__(self, model: CocoMixLM) -> None:
        super().__init__()
        if model.concept_head is not None or model.mixer.length_factor != 1:
            raise CocomixError("a teacher must be a plain LM (no concept head, mixer none)")
        self.model = freeze(model)
        self.num_layers = len(model.layers)
        self.model_dim = model.model_dim

    def _check(self, layer: int) -> None:
        if not 0 <= layer < self.num_layers:
            raise CocomixError(
                f"teacher layer {layer} is outside the teacher ({self.num_layers} blocks): "
                f"choose 0..{self.num_layers - 1}"
            )

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        self._check(layer)
        layout = BatchLayout.of(tokens)
        h = self.model.embed(tokens, layout)
        return self.model.run_blocks(h, layout, 0, layer + 1)

    def logits_from(self, hidden: Tensor, layer: int) -> Tensor:
        self._check(layer)
        layout = BatchLayout.of(hidden)
        h = self.model.run_blocks(hidden, layout, layer + 1, self.num_layers)
        return self.model.project(h)


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


class HFGPT2Teacher(nn.Module):
    """GPT-2 in Hugging Face format from a local folder (`config.json` + weights) as a `TeacherLM`.

    `hidden_at(tokens, 5)` is TransformerLens' `blocks.5.hook_resid_post`, where the paper's SAE
    reads (brief §1.2). Nothing is downloaded: the folder must hold the files.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        from transformers import GPT2LMHeadModel

        path = self.path = Path(path)
        layout = "config.json + model.safetensors or pytorch_model.bin"
        if not (path / "config.json").is_file():
            raise CocomixError(
                f"{path} has no config.json; point teacher.path at a local GPT-2 folder in Hugging "
                f"Face format ({layout})"
            )
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            raise CocomixError(f"{path} has config.json but no weights; a GPT-2 folder holds {layout}")
        try:
            model = GPT2LMHeadModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: tensor shape mismatch
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CocomixError(f"cannot load GPT-2 weights from {path}: {first}") from None
        self.model = freeze(model)
        self.num_layers = int(model.config.n_layer)
        self.model_dim = int(model.config.n_embd)
        self.vocab_size = int(model.config.vocab_size)
        self.max_seq_len = int(model.config.n_positions)

    def _blocks(self, h: Tensor, start: int, end: int) -> Tensor:
        # Blocks called one by one get no mask from the model: pass the causal mask explicitly.
        t = h.size(1)
        mask = torch.full((t, t), float("-inf"), dtype=h.dtype, device=h.device).triu(1)
        mask = mask.view(1, 1, t, t)
        for block in self.model.transformer.h[start:end]:
            out = block(h, attention_mask=mask)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        transformer = self.model.transformer
        positions = torch.arange(tokens.size(1), device=tokens.device)
        h = transformer.drop(transformer.wte(tokens) + transformer.wpe(positions))
        # Not `output_hidden_states`: its last entry already has the final LayerNorm applied.
        return self._blocks(h, 0, layer + 1)

    def logits_from(self, hidden: Tensor, layer: int) -> Tensor:
        h = self._blocks(hidden, layer + 1, self.num_layers)
        return self.model.lm_head(self.model.transformer.ln_f(h))


def check_teacher_vocab(teacher_vocab: int, student_vocab: int) -> None:
    if teacher_vocab != student_vocab:
        raise CocomixError(
            f"the teacher's vocabulary ({teacher_vocab}) differs from the student's tokenizer "
            f"({student_vocab}); teacher and student must share one tokenizer"
        )


def check_gpt2_student(teacher: HFGPT2Teacher, tokenizer: Tokenizer, seq_len: int) -> None:
    """A GPT-2 teacher reads GPT-2 token ids: the student must tokenize with GPT-2's BPE (equal
    vocabulary sizes are not enough), and its windows must fit GPT-2's positions."""
    from cocomix.data.gpt2_bpe import GPT2BPETokenizer

    if not isinstance(tokenizer, GPT2BPETokenizer):
        raise CocomixError(
            f"teacher.source=hf_gpt2 reads GPT-2 token ids, but the student's tokenizer is "
            f"{tokenizer!r}; set tokenizer=gpt2_bpe"
        )
    if teacher.vocab_size != tokenizer.vocab_size:
        raise CocomixError(
            f"the GPT-2 teacher at {teacher.path} has vocab_size {teacher.vocab_size} (config.json), "
            f"GPT-2's BPE has {tokenizer.vocab_size}; point teacher.path at a GPT-2 checkpoint "
            f"with GPT-2's vocabulary"
        )
    if seq_len > teacher.max_seq_len:
        raise CocomixError(
            f"train.seq_len={seq_len} exceeds the GPT-2 teacher's n_positions={teacher.max_seq_len} "
            f"({teacher.path}); lower train.seq_len"
        )


def teacher_vocab_size(teacher: nn.Module) -> int:
    if isinstance(teacher, CocoLMTeacher):
        return int(teacher.model.config.vocab_size)
    return int(teacher.vocab_size)
