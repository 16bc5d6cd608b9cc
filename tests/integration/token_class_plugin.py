"""A third-party concept source registered from outside the package: each position's label is the
next token's id modulo `num_classes`. Needs no teacher and no SAE, and declares so."""

from __future__ import annotations

from dataclasses import dataclass
from torch import Tensor

from cocomix.concepts.sources import ConceptBatch, ConceptSource, SourceContext
from cocomix.contracts import ConceptSourceContract
from cocomix.registry import CONCEPT_SOURCES


@dataclass
class TokenClassConfig:
    num_classes: int = 8


@CONCEPT_SOURCES.register("token_class", TokenClassConfig)
class TokenClassSource(ConceptSource):
    contract = ConceptSourceContract(
        teacher=False, sae=False, teacher_flops=None,
        num_concepts=lambda config: int(config.num_classes),
    )

    def __init__(self, config: TokenClassConfig, context: SourceContext) -> None:
        self.num_concepts = config.num_classes

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        nxt = tokens.roll(-1, dims=1) % self.num_concepts  # the last position's label wraps: harmless
        return ConceptBatch(labels=nxt.unsqueeze(-1))
