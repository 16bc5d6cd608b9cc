"""The pause-token baselines of Fig. 6f (brief §2.3): "NTP + Pause" and "KD + Pause".

The paper inserts "the pause token for every input token on the same hidden state layer as CoCoMix
to ensure comparable computation": the model's ``pause`` mixer (``cocomix.mixers.PauseMixer``,
one learned vector interleaved after every token at the insert layer, LM head on the token
slots; see the mixer for why).
The losses are unchanged: ``pause`` is NTP and ``kd_pause`` is KD (``cocomix.objectives.kd``);
each contract says ``implied_mixer="pause"``, so the runtime builds the pause mixer when the recipe
leaves ``mixer=none`` and refuses any other mixer. Whether the paper widens d for the pause model
is [unconfirmed]; that is the recipe's choice of arch (``*_ntp``), not the objective's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cocomix.objectives.base import ObjectiveContext
from cocomix.objectives.kd import KDConfig, KnowledgeDistillation
from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig
from cocomix.registry import OBJECTIVES


@dataclass
class PauseConfig(NtpConfig):
    """``pause`` has no options: the loss is NTP's."""


@OBJECTIVES.register("pause", PauseConfig)
class PauseNTP(NextTokenPrediction):
    """NTP + Pause: next-token prediction on a model with the pause mixer."""

    contract = replace(NextTokenPrediction.contract, implied_mixer="pause")

    def __init__(self, config: PauseConfig, context: ObjectiveContext | None = None) -> None:
        super().__init__(config, context)
        if context is not None:
            self.check_student(context)


@dataclass
class KDPauseConfig(KDConfig):
    """Same options as ``kd`` (lambda_KD 0.1, temperature 1)."""


@OBJECTIVES.register("kd_pause", KDPauseConfig)
class KDPause(KnowledgeDistillation):
    """KD + Pause: the KD loss on a model with the pause mixer."""

    contract = replace(KnowledgeDistillation.contract, implied_mixer="pause")


__all__ = ["KDPause", "KDPauseConfig", "PauseConfig", "PauseNTP"]
