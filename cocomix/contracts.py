"""What a registered component needs the run to build, declared once on its class.

Every objective, concept source and mixer carries one frozen dataclass as its class attribute
``contract``; the registry checks its type when the component registers and hands it out as
``Entry.contract``. The runtime reads these contracts before anything is built (``--dry-run``
included) to decide which teacher, SAE, concept head and compressor a run gets, and never looks
at a component's name. The baselines and ablations of paper brief §2 differ mostly here.

Metric names are declared once too: an objective's ``contract.metrics`` is a ``MetricValues``
dataclass whose fields are its metrics; ``compute`` returns an instance of it.

Pure Python on purpose (the method layer imports it with torch alone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricValues(Mapping[str, Any]):
    """Base of an objective's metrics: a dataclass whose fields are the metric names, each a
    detached scalar tensor. Reads like a ``dict`` (``out.metrics["loss_lm"]``, ``set(...)``)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def __getitem__(self, name: str) -> Any:
        if name not in self.names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(dataclasses.fields(self))


@dataclass(frozen=True)
class NoMetrics(MetricValues):
    """An objective that logs nothing besides its loss."""


@dataclass(frozen=True)
class ObjectiveContract:
    """What an objective needs: read from the registry before the run builds anything."""

    metrics: type[MetricValues] = NoMetrics
    """The dataclass ``compute`` returns as ``LossOutput.metrics`` (its fields: the metric names)."""
    concept_head: bool = False
    """The student needs a concept head (predictor, TopK, compressor)."""
    concept_source: bool = False
    """The objective reads concept targets (``concepts=`` must not be ``none``)."""
    teacher: bool = False
    """The objective reads a frozen teacher LM itself (knowledge distillation, brief §2.2); needs
    no SAE and no concept source."""
    concept_compressor: bool = False
    """The head keeps its compressor (predictions -> ``c_hat``) even if the mixer reads no
    concept. The runtime sets ``model.concept_compress = mixer reads_concept or this``, so
    "prediction only" (mixer none) builds a head without compressor (brief §2.7, Fig. 6d)."""
    implied_mixer: str | None = None
    """The mixer the objective is defined with (``pause`` for the pause baselines, brief §2.3;
    ``none`` for concept prediction only, §2.7): used when the recipe leaves ``mixer=none``, any
    other explicit mixer is refused. ``None``: any mixer goes."""
    model_overrides: Callable[[Any], dict[str, Any]] | None = None
    """Model options (``CocoLMConfig`` fields) the objective fixes, from its own options; e.g.
    hidden-state prediction needs ``concept_head="hidden"`` (brief §2.4)."""

    def metric_names(self) -> tuple[str, ...]:
        return self.metrics.names()

    def overrides(self, options: Any) -> dict[str, Any]:
        return dict(self.model_overrides(options)) if self.model_overrides is not None else {}


TEACHER_FLOP_MODES = ("attribution", "hidden", None)


@dataclass(frozen=True)
class ConceptSourceContract:
    """What a concept source needs built, and how its teacher work is counted in training FLOPs
    (``cocomix.runtime.flops``)."""

    teacher: bool = True
    sae: bool = True
    teacher_flops: str | None = "attribution"
    """``attribution`` (teacher forward + input-gradient backward, brief §1.2), ``hidden`` (teacher
    forward to the SAE layer) or ``None`` (no teacher work)."""
    num_concepts: Callable[[Any], int] | None = None
    """The label-space size from the source's options, for a label space that is not the SAE's
    latents (the concept head's width, known in ``--dry-run``); ``None``: the SAE's
    ``n_latents``."""
    counted_as: Callable[[Any], str] | None = None
    """For a source that serves another one's labels (``cached``): the registered name of that
    source, from the options; its teacher work is what each label costs."""

    def __post_init__(self) -> None:
        if self.teacher_flops not in TEACHER_FLOP_MODES:
            raise ValueError(
                f"teacher_flops={self.teacher_flops!r}; choose one of {TEACHER_FLOP_MODES}"
            )


@dataclass(frozen=True)
class MixerContract:
    reads_concept: bool = False
    """``mix`` reads the continuous concept ``c_hat``, so the model needs a concept head with its
    compressor."""


__all__ = [
    "ConceptSourceContract",
    "MetricValues",
    "MixerContract",
    "NoMetrics",
    "ObjectiveContract",
]
