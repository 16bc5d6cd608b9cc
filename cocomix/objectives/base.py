"""The objective interface: compute a loss and named metrics; the trainer owns the step.

An objective never calls backward, clips, steps or logs (DESIGN.md "Objectives"). It sees the
student through `cocomix.types.ConceptLM`, so this package imports with torch alone.

Besides `compute`, an objective *declares* what the run must build for it (class attributes the
runtime reads from the registry before building anything): a concept head, a concept source, a
frozen teacher, the mixer it is defined with, whether the head keeps its compressor, and any
model options it fixes (`model_overrides`). The baselines and ablations of paper brief §2 differ
mostly in these declarations.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cocomix.registry import CocomixError
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class ObjectiveContext:
    """What the runtime hands an objective factory besides its own options."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Built once by the runtime and shared. Keys: ``student`` (the model being trained),
    ``concept_source`` (a ``ConceptSource`` or None), ``teacher`` (a frozen ``TeacherLM``, present
    when the objective declares ``requires_teacher``)."""


class Objective(nn.Module, abc.ABC):
    """A training loss. Subclass, then `@OBJECTIVES.register("name", MyConfig)`.

    Frozen auxiliary modules (teachers, SAEs) must not be registered as submodules of the
    student; keep them on the objective and out of the optimizer (the trainer only optimises the
    model's parameters). Store them with ``self.__dict__[name] = ...`` so ``nn.Module`` does not
    register them as submodules of the objective either.
    """

    metric_names: tuple[str, ...] = ()
    """Names of the extra metrics `compute` returns (declared so they can be pre-registered)."""

    requires_concept_head: bool = False
    """The student needs a concept head (predictor, TopK, compressor) for this objective."""

    requires_concept_source: bool = False
    """The objective reads concept targets (`concepts=` must not be `none`)."""

    requires_teacher: bool = False
    """The objective reads a frozen teacher LM itself (``context.artifacts["teacher"]``), e.g.
    knowledge distillation (brief §2.2). Needs no SAE and no concept source."""

    implied_mixer: str | None = None
    """The mixer this objective is defined with (e.g. ``pause`` for the pause baselines, brief
    §2.3; ``none`` for concept prediction only, §2.7). The runtime uses it when the recipe leaves
    ``mixer=none`` and refuses any other explicit mixer. ``None``: any mixer goes."""

    requires_concept_compressor: bool = False
    """The head must keep its compressor (the part that turns predictions into ``c_hat``) even if
    the mixer does not read ``c_hat``. The runtime sets
    ``model.concept_compress = mixer.needs_concept or objective.requires_concept_compressor``,
    so "prediction only" (mixer none) builds a head without compressor (brief §2.7, Fig. 6d)."""

    @classmethod
    def model_overrides(cls, config: Any) -> dict[str, Any]:
        """Model options (``CocoLMConfig`` fields) this objective fixes, from its own options.

        E.g. hidden-state prediction needs ``concept_head="hidden"`` (brief §2.4). The runtime
        applies them over the recipe's ``model`` options. Default: none.
        """
        return {}

    @abc.abstractmethod
    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        """Loss on one micro-batch; ``batch.inputs`` predict ``batch.targets``."""

    # -- helpers for factories -----------------------------------------------------------------

    registered_name: str = ""
    """The name this class is registered under, for error messages ("objective=kd ..."); set by
    the registry when the class is registered."""

    @classmethod
    def objective_name(cls) -> str:
        return cls.registered_name or cls.__name__

    def check_student(self, context: ObjectiveContext) -> None:
        """Refuse a student built with another mixer than ``implied_mixer`` (when one is given).

        The runtime resolves the mixer before building the model; this catches a hand-built
        context (or a runtime that ignored the declaration) at construction, not mid-training.
        Without a student in the context (unit tests) there is nothing to check.
        """
        mixer = getattr(student_config(context), "mixer", None)
        if self.implied_mixer is not None and mixer is not None and mixer != self.implied_mixer:
            raise CocomixError(
                f"objective={self.objective_name()} is defined with mixer={self.implied_mixer}, "
                f"but the student was built with mixer={mixer}"
            )


def student_config(context: ObjectiveContext) -> Any:
    """The student's model config (``CocoLMConfig``) if the context has a student, else None."""
    student = context.artifacts.get("student")
    return getattr(getattr(student, "module", student), "config", None)
