"""Training FLOPs per token and per step: the one place they are counted (paper brief §6.3).

Conventions (brief §6.3, "My FLOP estimate"), chosen so the brief's table is reproduced exactly
(``tests/unit/analysis/test_flops.py``):

- A matmul costs 2 FLOPs per weight per position: a block is ``2 * (4d² + 2·d·ffn)`` (Q, K, V,
  output projection and the two MLP matrices), the LM head ``2·V·d`` on the positions it reads.
  Embedding lookups, biases, LayerNorms, softmaxes and losses are not counted.
- Attention scores and the weighted sum cost ``4·ctx·d`` per layer per position, ``ctx`` being
  the attended length counted non-causally (the full window).
- Training = 3 × forward (backward = 2 × forward).
- Length-doubling mixers (``interleave``, ``pause``): the upper blocks see ``2T`` positions of
  context ``2T``, so per original token 2× their matmuls and 4× their attention; the LM head
  still reads ``T`` positions.
- Concept head: the predictor is a dense ``d × C`` matmul per token; the compressor gathers the
  ``k`` kept columns (``k × d``, as ``cocomix.concepts.head`` computes it). ``dense_compressor``
  counts a dense ``C × d`` matmul instead (the official code; the brief's table uses it).
- A teacher (``TeacherCost``) adds the concept-extraction cost per training token; see its
  ``mode``. It is frozen, so it never pays the 3× training factor unless ``mode="official"``,
  which counts the official code's full forward + backward with parameter gradients.

Plain arithmetic on a ``CocoLMConfig``: no model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cocomix.mixers  # noqa: F401  (registers the built-in mixers whose length factor is read)
from cocomix.concepts.head_kinds import head_kind
from cocomix.models.config import CocoLMConfig
from cocomix.registry import MIXERS, CocomixError

TEACHER_MODES: tuple[str, ...] = ("hidden", "forward", "attribution", "official")


@dataclass(frozen=True)
class TeacherCost:
    """The frozen teacher's work per training token.

    ``mode``:
    - ``hidden``: forward through blocks ``0..layer`` only (``activation``/``teacher_hidden``
      sources);
    - ``forward``: the full forward with the LM head (knowledge distillation);
    - ``attribution``: full forward, then the gradient w.r.t. the residual at ``layer`` only,
      i.e. an input-gradient backward (1× forward) of the blocks above ``layer`` and the LM head
      (``cocomix.concepts.attribution.teacher_grad``; no parameter gradients);
    - ``official``: full forward + full backward with parameter gradients (3× forward), as the
      official code runs it (brief §6.2).

    ``sae_latents``/``sae_k`` add the SAE encoder (dense ``d × n``) and the attribution scores:
    gathered ``k × d`` (``variant=code``) or dense ``d × n`` (``attribution_dense``, the paper
    variant and the brief's table).
    """

    model_dim: int
    num_layers: int
    ffn_inner_dim: int
    vocab_size: int
    layer: int
    mode: str = "attribution"
    sae_latents: int = 0
    sae_k: int = 0
    attribution_dense: bool = False

    @classmethod
    def from_config(cls, config: CocoLMConfig, layer: int, **options: object) -> TeacherCost:
        """The cost of a ``cocomix_lm`` teacher; ``options``: ``mode``, ``sae_latents`` ..."""
        return cls(config.model_dim, config.num_layers, config.ffn_inner_dim, config.vocab_size,
                   layer, **options)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.mode not in TEACHER_MODES:
            raise CocomixError(f"teacher FLOP mode {self.mode!r}; choose {', '.join(TEACHER_MODES)}")
        if not 0 <= self.layer < self.num_layers:
            raise CocomixError(f"teacher layer {self.layer} is outside 0..{self.num_layers - 1}")


@dataclass(frozen=True)
class FlopCount:
    """FLOPs per training token, by part; ``total`` is what training costs per token."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def per_step(self, tokens_per_step: int) -> float:
        return self.total * tokens_per_step


def length_factor(mixer: str) -> int:
    """Positions per token in the upper blocks: the registered mixer's ``length_factor``."""
    factory = MIXERS.get(mixer).factory  # raises, listing the known mixers
    factor = getattr(factory, "length_factor", None)
    if not isinstance(factor, int) or factor < 1:
        raise CocomixError(
            f"mixer {mixer!r} declares no integer length_factor; FLOPs cannot be counted for it"
        )
    return factor


def block_matmul_flops(model_dim: int, ffn_inner_dim: int) -> float:
    """Forward FLOPs of one block's weights at one position: ``2 * (4d² + 2·d·ffn)``."""
    return 2.0 * (4 * model_dim * model_dim + 2 * model_dim * ffn_inner_dim)


def attention_flops(model_dim: int, context: int) -> float:
    """Forward attention FLOPs (scores + weighted sum) of one layer at one position."""
    return 4.0 * context * model_dim


def student_forward_flops(
    config: CocoLMConfig, seq_len: int, *, dense_compressor: bool = False
) -> dict[str, float]:
    """Forward FLOPs per *input token* of the student ``config``, by part (see the module doc).

    Concept heads (``config.concept_head``): ``sae`` = predictor ``d x C`` + compressor (``k``
    gathered columns, or ``C`` with ``dense_compressor``); ``hidden`` = the 2-layer MLP
    ``d -> mlp_hidden -> d_con`` + a dense compressor ``d_con -> d``. Without
    ``concept_compress`` the compressor is not built and costs nothing.
    """
    d, layers, insert = config.model_dim, config.num_layers, config.insert_layer
    if not 0 <= insert <= layers:
        raise CocomixError(f"insert_layer {insert} is outside 0..{layers}")
    factor = length_factor(config.mixer)
    block = block_matmul_flops(d, config.ffn_inner_dim)
    parts = {
        "lower_blocks": insert * (block + attention_flops(d, seq_len)),
        "upper_blocks": (layers - insert) * factor * (block + attention_flops(d, factor * seq_len)),
        "lm_head": 2.0 * config.vocab_size * d,
    }
    kind = head_kind(config)  # each head kind states its own cost
    if kind.present(config):
        parts.update(kind.flops(config, dense_compressor=dense_compressor))
    return parts


def teacher_flops(teacher: TeacherCost, seq_len: int) -> dict[str, float]:
    """The teacher's FLOPs per training token, by part."""
    d = teacher.model_dim
    block = block_matmul_flops(d, teacher.ffn_inner_dim) + attention_flops(d, seq_len)
    head = 2.0 * teacher.vocab_size * d
    to_layer = (teacher.layer + 1) * block
    full = teacher.num_layers * block + head
    above = (teacher.num_layers - teacher.layer - 1) * block + head
    parts: dict[str, float] = {}
    if teacher.mode == "hidden":
        parts["teacher_forward"] = to_layer
    elif teacher.mode == "forward":
        parts["teacher_forward"] = full
    elif teacher.mode == "attribution":
        parts["teacher_forward"] = full
        parts["teacher_backward"] = above  # input gradients only, down to the SAE layer
    else:  # official
        parts["teacher_forward"] = full
        parts["teacher_backward"] = 2.0 * full
    if teacher.sae_latents > 0:
        parts["sae_encoder"] = 2.0 * d * teacher.sae_latents
        if teacher.mode in ("attribution", "official"):
            width = teacher.sae_latents if teacher.attribution_dense else teacher.sae_k
            parts["attribution"] = 2.0 * d * width
    return parts


def training_flops_per_token(
    config: CocoLMConfig,
    seq_len: int,
    *,
    teacher: TeacherCost | None = None,
    dense_compressor: bool = False,
) -> FlopCount:
    """Student forward + backward (3x forward) plus the teacher's extraction, per training token.

    ``seq_len`` is the training window (``train.seq_len``), which sets the attention context.
    """
    forward = student_forward_flops(config, seq_len, dense_compressor=dense_compressor)
    parts = {f"student_{name}": 3.0 * value for name, value in forward.items()}
    if teacher is not None:
        parts.update(teacher_flops(teacher, seq_len))
    return FlopCount(parts)


def training_flops_per_step(
    config: CocoLMConfig,
    seq_len: int,
    tokens_per_step: int,
    *,
    teacher: TeacherCost | None = None,
    dense_compressor: bool = False,
) -> float:
    """FLOPs of one optimizer step over ``tokens_per_step`` tokens (all ranks, all
    micro-batches): what ``perf/flops`` should log, cumulated over steps."""
    count = training_flops_per_token(config, seq_len, teacher=teacher,
                                     dense_compressor=dense_compressor)
    return count.per_step(tokens_per_step)
