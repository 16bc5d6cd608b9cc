"""Any Hugging Face causal LM as the frozen teacher (``teacher.source=hf``).

The paper's teacher is GPT-2 124M (§2.1); a researcher may bring Pythia, Llama, Gemma or any
``AutoModelForCausalLM``. We never re-implement a family's blocks: the model runs its own
forward, and forward hooks on its block list read or replace the residual stream after block
``layer`` (TransformerLens' ``blocks.{layer}.hook_resid_post``, before any final norm):

- ``hidden_at`` stops the forward right after that block (the blocks above are never run);
- ``logits(tokens, layer, edit)`` replaces that block's output by ``edit(output)``, so attribution
  differentiates the upper blocks from there in one pass, as for the project's own teacher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cocomix.registry import CocomixError, first_line
from cocomix.runtime.hub import offline_kwargs, require_source
from cocomix.runtime.teacher import check_teacher_layer, freeze

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
WHAT = "a Hugging Face causal LM (config.json and weights)"


@dataclass(frozen=True)
class HFTeacherShape:
    """What ``config.json`` says, read without loading weights (``--dry-run``)."""

    model_type: str
    num_layers: int
    model_dim: int
    vocab_size: int
    max_positions: int | None
    activation: str | None
    """GPT-2-style configs' ``activation_function`` (None where the config has none)."""


def read_shape(source: Path | str) -> HFTeacherShape:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source), **offline_kwargs(source))
    except (OSError, ValueError, KeyError) as err:
        raise CocomixError(f"cannot read {source}'s config.json ({first_line(err)}); teacher.path must "
                           f"name {WHAT}") from None
    missing = [name for name in ("num_hidden_layers", "hidden_size", "vocab_size") if getattr(config, name, None) is None]
    if missing:
        raise CocomixError(f"{source}'s config ({config.model_type}) has no {', '.join(missing)}; "
                           f"teacher.source=hf reads decoder-only causal LMs (GPT-2, GPT-NeoX, Llama, ...)")
    positions = getattr(config, "max_position_embeddings", None)
    return HFTeacherShape(str(config.model_type), int(config.num_hidden_layers), int(config.hidden_size),
                          int(config.vocab_size), int(positions) if positions else None,
                          getattr(config, "activation_function", None))


def check_positions(shape: HFTeacherShape, source: Path | str, seq_len: int) -> None:
    """The student's windows within the teacher's positions."""
    if shape.max_positions is not None and seq_len > shape.max_positions:
        raise CocomixError(f"train.seq_len={seq_len} exceeds {source}'s max_position_embeddings="
                           f"{shape.max_positions}; lower train.seq_len")


def _fused_activation(shape: HFTeacherShape, source: Path | str) -> dict[str, str]:
    """GPT-2's checkpoints name ``gelu_new``, which ``transformers`` computes op by op in Python;
    ``gelu_pytorch_tanh`` is the same function (the tanh approximation) as one PyTorch kernel, the
    one the project's own models use. Labels through GPT-2 cost 10-20% less with it and agree to
    about 2e-7 per activation (docs/performance.md); the swap is said, not silent."""
    if shape.activation != "gelu_new":
        return {}
    print(f"teacher: {source}'s gelu_new runs as PyTorch's fused tanh GELU (the same function)")
    return {"activation_function": "gelu_pytorch_tanh"}


class _StopForward(Exception):
    """Raised by ``hidden_at``'s hook: the blocks above the layer are not needed."""


def find_blocks(model: nn.Module, num_layers: int) -> nn.ModuleList:
    """The model's list of transformer blocks: the first ``ModuleList`` as long as its config's
    ``num_hidden_layers`` (GPT-2 ``transformer.h``, GPT-NeoX ``gpt_neox.layers``, Llama
    ``model.layers``)."""
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == num_layers:
            return module
    raise CocomixError(f"{type(model).__name__} has no list of {num_layers} blocks; teacher.source=hf "
                       f"reads decoder-only causal LMs (GPT-2, GPT-NeoX, Llama, ...)")


def _first_output(output: Any) -> Tensor:
    return output[0] if isinstance(output, tuple) else output


class HFCausalLMTeacher(nn.Module):
    """A frozen ``AutoModelForCausalLM`` as a ``TeacherLM`` (see the module docstring)."""

    def __init__(self, source: Path | str, *, dtype: str = "float32") -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        shape = read_shape(source)
        options = {**offline_kwargs(source), **_fused_activation(shape, source)}
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source), dtype=DTYPES[dtype], **options)
        except (OSError, ValueError, RuntimeError, KeyError) as err:  # RuntimeError: shape mismatch
            raise CocomixError(f"cannot load {source} as a causal LM ({first_line(err)}); teacher.path "
                               f"must name {WHAT}") from None
        self.source = source
        self.model = freeze(model)
        self.blocks = find_blocks(model, shape.num_layers)
        self.num_layers = shape.num_layers
        self.model_dim = shape.model_dim
        self.vocab_size = shape.vocab_size
        self.shape = shape
        freeze(self)

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        check_teacher_layer(layer, self.num_layers)
        seen: list[Tensor] = []

        def read_and_stop(_module: nn.Module, _args: Any, output: Any) -> None:
            seen.append(_first_output(output))
            raise _StopForward

        handle = self.blocks[layer].register_forward_hook(read_and_stop)
        try:
            self.model(input_ids=tokens, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return seen[0]

    def use_vocabulary(self, size: int) -> None:
        """Predict over the first ``size`` ids only: the student's tokenizer has ``size`` tokens and
        the rest of the teacher's embedding rows are padding (Pythia pads 50277 to 50304)."""
        if not 0 < size <= self.shape.vocab_size:
            raise CocomixError(f"the student's tokenizer has {size} tokens, more than {self.source}'s "
                               f"vocabulary ({self.shape.vocab_size}); use the teacher's tokenizer")
        self.vocab_size = size

    def logits(self, tokens: Tensor, layer: int | None = None,
               edit: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        return self._forward_logits(tokens, layer, edit)[..., : self.vocab_size]

    def _forward_logits(self, tokens: Tensor, layer: int | None,
                        edit: Callable[[Tensor], Tensor] | None) -> Tensor:
        if layer is None or edit is None:
            return self.model(input_ids=tokens, use_cache=False).logits
        check_teacher_layer(layer, self.num_layers)

        def replace(_module: nn.Module, _args: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                return (edit(output[0]), *output[1:])
            return edit(output)

        handle = self.blocks[layer].register_forward_hook(replace)
        try:
            return self.model(input_ids=tokens, use_cache=False).logits
        finally:
            handle.remove()


def resolve_teacher(path: str) -> Path | str:
    """``teacher.path`` as a local folder or a hub name that can be had now."""
    return require_source(path, "teacher.path", WHAT)


__all__ = ["DTYPES", "HFCausalLMTeacher", "HFTeacherShape", "check_positions", "find_blocks", "read_shape", "resolve_teacher"]
