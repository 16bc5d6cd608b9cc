"""Mixers: how the continuous concept enters the residual stream at the insert layer.

The student runs ``h = blocks[:L](embed(x))``, then a mixer turns ``(h, c_hat)`` into the
sequence the remaining blocks ``blocks[L:]`` see, and after the last block says which positions
feed the LM head (paper brief §1.5, §2.3, §2.8):

- ``none``: ``h`` unchanged (NTP, and "concept prediction only", §2.7).
- ``interleave``: ``[h1, c1, h2, c2, ...]``, causal over 2T, the LM head reads the concept slots
  (CoCoMix, §1.5).
- ``interleave_residual`` (not in the paper; a diagnostic): ``[h1, h1 + c1, ...]``, the concept
  slot starts from its token's residual stream (``InterleaveResidualMixer`` says why).
- ``add``: ``h + c_hat``, length T, the LM head reads the token positions (§2.8 "intervention").
- ``pause``: ``[h1, p, h2, p, ...]`` with one learned vector ``p``, the LM head reads the token
  slots (§2.3, the pause-token baseline; see ``PauseMixer`` for why not the pause slots).

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

import torch
from torch import Tensor, nn

from cocomix.contracts import MixerContract
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

    contract: MixerContract = MixerContract()
    """Whether ``mix`` reads ``concept`` (then the model must have a concept head)."""

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
    contract = MixerContract(reads_concept=False)

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


def interleave_slots(first: Tensor, second: Tensor) -> Tensor:
    """``[a1, b1, a2, b2, ...]``: (..., T, d) twice -> (..., 2T, d) (the official
    ``torch.stack([h, c], dim=2).view(B, 2T, d)``, brief §1.5)."""
    return torch.stack([first, second], dim=-2).flatten(-3, -2)


def first_slots(x: Tensor) -> Tensor:
    """The even positions ``x[..., 0::2, :]`` (the token slots) of an interleaved sequence."""
    return x[..., 0::2, :]


def second_slots(x: Tensor) -> Tensor:
    """The odd positions ``x[..., 1::2, :]`` of an interleaved (..., 2T, d) sequence."""
    return x[..., 1::2, :]


@dataclass(frozen=True)
class InterleaveMixerConfig:
    """The ``interleave`` mixer has no options."""


@MIXERS.register("interleave", InterleaveMixerConfig)
class InterleaveMixer(Mixer):
    """CoCoMix (brief §1.5): ``[h1, c1, h2, c2, ...]``, LM head on the concept slots.

    Plain causal attention over the 2T positions, so ``c_t`` sees ``h_<=t`` and ``c_<t``, and
    ``h_t`` sees ``h_<t`` and ``c_<t`` but not ``c_t``. The output at ``c_t`` predicts
    ``x_{t+1}``; the token slots' final outputs are discarded (they still serve as keys/values).
    """

    length_factor = 2
    contract = MixerContract(reads_concept=True)

    def __init__(self, config: InterleaveMixerConfig | None = None, model_dim: int = 0) -> None:
        super().__init__()
        self.config = config or InterleaveMixerConfig()
        self.model_dim = model_dim

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        return interleave_slots(h, self._require_concept(concept))

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return second_slots(x)


@dataclass(frozen=True)
class InterleaveResidualMixerConfig:
    """The ``interleave_residual`` mixer has no options."""


@MIXERS.register("interleave_residual", InterleaveResidualMixerConfig)
class InterleaveResidualMixer(InterleaveMixer):
    """Not in the paper: ``[h1, h1 + c1, h2, h2 + c2, ...]``, LM head on the second slots.

    A diagnostic of ``interleave``. There the concept slot starts from ``c_hat_t`` alone: no
    position (positions enter at the input only) and no token identity beyond what the TopK
    concept code carries, so the LM head's position must find its own token through attention,
    by content. With a rich code (the paper's 32 of 32768 latents) ``c_hat_t`` nearly identifies
    ``h_t``; with few concepts it cannot (``study/positive_control``: 9 labels). Starting the
    slot from ``h_t + c_hat_t`` keeps the doubled sequence and the concept while removing that
    bottleneck, so comparing the two separates "the concept helps" from "the slot is starved".
    """

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        return interleave_slots(h, h + self._require_concept(concept))


@dataclass(frozen=True)
class AddMixerConfig:
    """The ``add`` mixer has no options."""


@MIXERS.register("add", AddMixerConfig)
class AddMixer(Mixer):
    """Concept "intervention" (brief §2.8): ``h_t + c_hat_t``, length T, LM head on every token."""

    length_factor = 1
    contract = MixerContract(reads_concept=True)

    def __init__(self, config: AddMixerConfig | None = None, model_dim: int = 0) -> None:
        super().__init__()
        self.config = config or AddMixerConfig()
        self.model_dim = model_dim

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        return h + self._require_concept(concept)

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return x


PAUSE_INIT_STD = 0.02
"""Std of the pause vector's N(0, std) init (GPT-2's embedding init)."""


@dataclass(frozen=True)
class PauseMixerConfig:
    """``pause`` has no options: a ``mixer.init_std`` used to compose and show in ``--dry-run``
    but could not be set and never reached the mixer (the model builds mixers from its name)."""


@MIXERS.register("pause", PauseMixerConfig)
class PauseMixer(Mixer):
    """Pause-token baseline (brief §2.3): ``[h1, p, h2, p, ...]``, LM head on the token slots.

    The paper inserts "the pause token for every input token on the same hidden state layer as
    CoCoMix to ensure comparable computation"; the upper blocks run on 2T positions as CoCoMix's
    do. Unconfirmed there, and our reading: one shared learnable d-vector ``p`` (not derived from
    ``h_t``). Which slot the LM head reads is also unconfirmed. We read the token slots: the pause
    slots carry no position of their own (positions enter at the input only), so a constant
    ``p`` cannot tell which token it follows, and reading it made the model learn unigram
    statistics only (tiny preset, 200 steps: valid loss 7.01 vs NTP's 6.25, train loss flat at
    the unigram entropy from step 50). Read this way, ``h_t`` predicts ``x_{t+1}`` as in NTP and
    also attends to the earlier pause slots: extra computation, as pause tokens intend. Any
    concept head is ignored (a pause model normally has none).
    """

    length_factor = 2
    contract = MixerContract(reads_concept=False)

    def __init__(self, config: PauseMixerConfig | None = None, model_dim: int = 0) -> None:
        super().__init__()
        self.config = config or PauseMixerConfig()
        if model_dim <= 0:
            raise CocomixError(f"the pause mixer needs a positive model_dim, got {model_dim}")
        self.model_dim = model_dim
        self.pause = nn.Parameter(torch.empty(model_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.pause, mean=0.0, std=PAUSE_INIT_STD)

    def mix(self, h: Tensor, concept: Tensor | None) -> Tensor:
        return interleave_slots(h, self.pause.to(h.dtype).expand_as(h))

    def select_lm_positions(self, x: Tensor) -> Tensor:
        return first_slots(x)
