"""Objectives: plain-torch loss math and its registered compositions (`ntp`, ...)."""

from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.objectives.terms import concept_loss, next_token_loss

__all__ = ["Objective", "ObjectiveContext", "concept_loss", "next_token_loss"]
