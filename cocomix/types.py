"""Plain-torch types shared by the method modules and the runtime.

Objectives see the student only through ``ConceptLM`` so the loss math never imports fairseq2;
the fairseq2 model family (``cocomix.models``) implements it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from torch import Tensor


@dataclass
class ModelOutput:
    """What one forward pass of the student exposes to an objective.

    ``logits[:, t]`` is the distribution over token ``t + 1`` given the inputs up to ``t``, whatever
    the mixer did in between (for ``interleave`` these are read at the concept slots, paper §2.2).
    """

    logits: Tensor
    """(B, T, V) next-token logits, one row per input position."""

    hidden: Tensor | None = None
    """(B, T, d) residual stream entering block ``insert_layer`` (the concept layer)."""

    concept_logits: Tensor | None = None
    """(B, T, C) concept-prediction logits z_t (paper Eq. 3's input), when the model has an
    SAE-concept head (``ConceptHead``)."""

    concept_prediction: Tensor | None = None
    """(B, T, d_con) predicted teacher hidden states g(h_t), when the model has a hidden-state
    head (``HiddenStateHead``; Fig. 6b, brief §2.4). A separate field, not ``concept_logits``, so
    objectives that expect concept logits fail clearly on this head."""

    extras: dict[str, Tensor] = field(default_factory=dict)
    """Anything else a custom model wants to hand a custom objective."""


@runtime_checkable
class ConceptLM(Protocol):
    """The student as objectives see it."""

    def forward_lm(self, tokens: Tensor) -> ModelOutput:
        """Run the full model on ``tokens`` (B, T) of full-length windows (no padding)."""
        ...


@dataclass
class TokenBatch:
    """One micro-batch as objectives see it."""

    tokens: Tensor
    """(B, T+1) token windows: inputs are ``tokens[:, :-1]``, targets ``tokens[:, 1:]``."""

    sample_index: Tensor | None = None
    """(B,) global sample index of each window (a pure function of seed and position in the
    data order), so per-sample caches such as precomputed concept labels can be looked up."""

    @property
    def inputs(self) -> Tensor:
        return self.tokens[:, :-1]

    @property
    def targets(self) -> Tensor:
        return self.tokens[:, 1:]


@dataclass
class LossOutput:
    """An objective's result for one micro-batch; the trainer does backward and stepping."""

    loss: Tensor
    """Scalar to differentiate: the mean over ``num_targets`` predicted tokens."""

    num_targets: int
    """Number of next-token targets the mean was taken over."""

    metrics: dict[str, Tensor] = field(default_factory=dict)
    """Detached scalars to log, e.g. ``loss_lm``, ``loss_concept``, ``concept_acc``."""


@runtime_checkable
class TeacherLM(Protocol):
    """A frozen concept-extraction LM as concept sources see it (paper §2.1: M_con = f_con ∘ h_con).

    ``layer`` is 0-based and means "the residual stream after block ``layer``" (GPT-2's
    ``blocks.{layer}.hook_resid_post``; the paper's SAE sits at layer 5 of GPT-2 124M).
    """

    num_layers: int
    model_dim: int
    vocab_size: int
    """Token ids the teacher reads and predicts (its logits' last dimension)."""

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        """h_con: (B, T, d) residual after block ``layer``."""
        ...

    def logits(self, tokens: Tensor, layer: int | None = None,
               edit: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """(B, T, V) next-token logits on ``tokens``. With ``layer`` and ``edit``, the residual after
        block ``layer`` is replaced by ``edit(residual)`` and the blocks above continue from it:
        attribution (paper Eq. 1) differentiates f_con through the upper blocks this way, in one
        forward pass whose lower blocks build no graph."""
        ...
