"""Objectives: plain-torch loss math and its registered compositions (`ntp`, ...)."""

from cocomix.objectives.base import Objective, ObjectiveContext, next_token_loss

__all__ = ["Objective", "ObjectiveContext", "next_token_loss"]
