"""Mixers: how the continuous concept enters the residual stream at the insert layer.

The student runs ``h = blocks[:L](embed(x))``, then a mixer turns ``(h, c_hat)`` into the
sequence the remaining blocks ``blocks[L:]`` see, and after the last block says which positions
feed the LM head (paper brief §1.5, §2.3, §2.8):

- ``none``: ``h`` unchanged (NTP, and "concept prediction only").
- ``interleave`` / ``add`` / ``pause``: later; they plug in here without changing the model.

This module is part of the method layer: it imports torch (and the pure-Python registry) only,
never fairseq2 or Hydra, so it can be lifted into another codebase. A test guards this.

Conventions every mixer follows, so the model can stay mixer-agnostic:

- The sequence dimension is ``-2`` and the model dimension is ``-1``; leading dimensions are
  arbitrary (``(B, T, d)`` for batches, ``(N, d)`` for packed sequences).
- ``mix`` returns ``length_factor * T`` positions. With ``length_factor == 2`` the model doubles
  the attention layout of the upper blocks and adds positional embeddings only at the input
  (paper brief §1.5: concept slots get no position embedding of their own).
- ``select_lm_positions`` maps the upper blocks' output back to ``T`` positions, one per input
  token, in input order; row ``t`` predicts token ``t + 1``.
- Both are per-position causal: a step of one new token during cached decoding mixes to
  ``length_factor`` new positions, exactly as the full sequence would.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from cocomix.registry import MIXERS, CocomixError


class Mixer(nn.Module):
    """Base class: combine the insert-layer hidden states with the predicted concepts.

    A mixer factory is registered in ``cocomix.registry.MIXERS`` and called as
    ``factory(mixer_config, model_dim) -> Mixer`` (the model builds it with
    ``MIXERS.build(name, None, model_dim)``, i.e. with the mixer's default options).

    A mixer with parameters (e.g. pause's learned vector) initialises them in its own
    ``reset_parameters()``: fairseq2 calls it per module when it materialises a meta-device model.
    """

    length_factor: int = 1
    """How many positions the upper blocks see per input token (1, or 2 for interleaving)."""

    needs_concept: bool = False
    """Whether ``mix`` reads ``concept``; if so the model must have a concept head."""

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        """Return the sequence the upper blocks see.

        :param h: residual stream entering block ``insert_layer``, shape ``(..., T, d)``.
        :param concept: continuous concept ``c_hat`` per position, shape ``(..., T, d)``, or
            ``None`` when the model has no concept head.
        :returns: shape ``(..., length_factor * T, d)``.
        """
        raise NotImplementedError

    def select_lm_positions(self, x: Tensor) -> Tensor:
        """Pick the positions of the upper blocks' output that feed the LM head.

        :param x: shape ``(..., length_factor * T, d)``.
        :returns: shape ``(..., T, d)``; row ``t`` predicts token ``t + 1``.
        """
        raise NotImplementedError

    def forward(self, h: Tensor, concept: Tensor | None = None) -> Tensor:
        return self.mix(h, concept)

    def _require_concept(self, concept: Tensor | None) -> Tensor:
        """Helper for mixers that read the concept: a clear error when there is none."""
        if concept is None:
            raise CocomixError(
                f"mixer {type(self).__name__} needs a concept vector, but the model has no "
                f"concept head; use an objective that builds one (e.g. cocomix) or mixer=none"
            )
        return concept


@dataclass(frozen=True)
class NoneMixerConfig:
    """The ``none`` mixer has no options."""


@MIXERS.register("none", NoneMixerConfig)
class NoneMixer(Mixer):
    """Identity: the upper blocks see ``h`` and the LM head reads every position (plain GPT-2)."""

    length_factor = 1
    needs_concept = False

    def __init__(self, config: NoneMixerConfig | None = None, model_dim: int = 0) -> None:
        super().__init__()
        self.config = config or NoneMixerConfig()
        self.model_dim = model_dim

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        # The concept (if a head produced one, e.g. "concept prediction only", paper brief §2.7)
        # is deliberately ignored: prediction without mixing.
        return h

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return x
