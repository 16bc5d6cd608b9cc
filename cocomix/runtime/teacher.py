"""Frozen teachers (concept-extraction models) behind the `TeacherLM` protocol.

This module holds a `cocomix_lm` trained by a recipe or read from a run folder (the CPU stand-in
for GPT-2 124M, paper §2.1); `hf_teacher.py` holds any Hugging Face causal LM. Both are frozen: eval mode, no gradients on parameters, outside the student's optimizer and
checkpoints (they live on the objective's concept source, never on the model).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from fairseq2.nn import BatchLayout
from torch import Tensor, nn

from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


def check_teacher_layer(layer: int, depth: int) -> None:
    """``teacher.layer`` names the residual after one of the teacher's ``depth`` blocks."""
    if not 0 <= layer < depth:
        raise CocomixError(f"teacher.layer={layer} is outside the teacher ({depth} blocks): choose 0..{depth - 1}")


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
        self.vocab_size = int(model.config.vocab_size)

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        check_teacher_layer(layer, self.num_layers)
        layout = BatchLayout.of(tokens)
        h = self.model.embed(tokens, layout)
        return self.model.run_blocks(h, layout, 0, layer + 1)

    def logits(self, tokens: Tensor, layer: int | None = None,
               edit: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        if layer is None or edit is None:
            layout = BatchLayout.of(tokens)
            return self.model.project(self.model.run_blocks(self.model.embed(tokens, layout), layout, 0,
                                                            self.num_layers))
        with torch.no_grad():  # the blocks below the edit need no graph
            h = self.hidden_at(tokens, layer)  # checks the layer
        h = edit(h)
        layout = BatchLayout.of(h)
        return self.model.project(self.model.run_blocks(h, layout, layer + 1, self.num_layers))


def check_teacher_vocab(teacher_vocab: int, student_vocab: int) -> None:
    if teacher_vocab != student_vocab:
        raise CocomixError(
            f"the teacher's vocabulary ({teacher_vocab}) differs from the student's tokenizer "
            f"({student_vocab}); teacher and student must share one tokenizer"
        )
