"""Objectives: plain-torch loss math and its registered compositions.

Built-ins (each module registers itself in ``cocomix.registry.OBJECTIVES`` when imported):
``ntp``, ``cocomix``, ``kd``, ``pause`` and ``kd_pause`` (``pause.py``),
``concept_prediction_only``, ``concept_mixing_only``, ``hidden_state_prediction``.
"""

from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.objectives.terms import (
    concept_loss,
    hidden_state_loss,
    kd_loss,
    next_token_loss,
    teacher_logits,
)

__all__ = [
    "Objective",
    "ObjectiveContext",
    "concept_loss",
    "hidden_state_loss",
    "kd_loss",
    "next_token_loss",
    "teacher_logits",
]
