"""The `none` concept source: recipes without concepts (NTP, KD, pause) select it."""

from __future__ import annotations

from dataclasses import dataclass

from cocomix.contracts import ConceptSourceContract
from cocomix.registry import CONCEPT_SOURCES


@dataclass
class NoConceptsConfig:
    """No options: no teacher, no SAE, no labels."""


@CONCEPT_SOURCES.register("none", NoConceptsConfig)
class NoConcepts:
    """Provides no concept labels; objectives that need labels refuse to run with it."""

    contract = ConceptSourceContract(teacher=False, sae=False, teacher_flops=None)

    def __init__(self, config: NoConceptsConfig, *args: object, **kwargs: object) -> None:
        self.config = config
