"""The objective interface: compute a loss and named metrics; the trainer owns the step.

An objective never calls backward, clips, steps or logs (DESIGN.md "Objectives"). It sees the
student through `cocomix.types.ConceptLM`, so this package imports with torch alone.

Besides `compute`, an objective *declares* what the run must build for it, as one
`ObjectiveContract` (`cocomix.contracts`): a concept head, a concept source, a frozen teacher,
the mixer it is defined with, whether the head keeps its compressor, any model options it fixes,
and its metrics. The baselines and ablations of paper brief §2 differ mostly in these contracts.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cocomix.contracts import ObjectiveContract
from cocomix.registry import CocomixError
from cocomix.types import ConceptLM, LossOutput, TeacherLM, TokenBatch

if TYPE_CHECKING:
    from cocomix.concepts.sources import ConceptSource


@dataclass
class ObjectiveContext:
    """What the runtime hands an objective factory besides its own options."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    student: nn.Module | None = None
    """The model being trained (maybe wrapped for DDP/FSDP: its ``module``), for checks against
    its config; ``None`` in unit tests that build no student."""
    concept_source: ConceptSource | None = None
    """Built by the runtime when the recipe selects ``concepts=...`` (not ``none``)."""
    teacher: TeacherLM | None = None
    """The frozen teacher, built when the objective's contract says ``teacher=True``."""


class Objective(nn.Module, abc.ABC):
    """A training loss. Subclass, then `@OBJECTIVES.register("name", MyConfig)`.

    Frozen auxiliary modules (teachers, SAEs) must not be registered as submodules of the
    student; keep them on the objective and out of the optimizer (the trainer only optimises the
    model's parameters). Store them with ``self.__dict__[name] = ...`` so ``nn.Module`` does not
    register them as submodules of the objective either.
    """

    contract: ObjectiveContract = ObjectiveContract()
    """What the run must build for this objective and the metrics ``compute`` returns
    (``cocomix.contracts.ObjectiveContract``), read from the registry before anything is built."""

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
        """Refuse a student built with another mixer than the contract's ``implied_mixer``.

        The runtime resolves the mixer before building the model; this catches a hand-built
        context (or a runtime that ignored the declaration) at construction, not mid-training.
        Without a student in the context (unit tests) there is nothing to check.
        """
        mixer = getattr(student_config(context), "mixer", None)
        implied = self.contract.implied_mixer
        if implied is not None and mixer is not None and mixer != implied:
            raise CocomixError(
                f"objective={self.objective_name()} is defined with mixer={implied}, "
                f"but the student was built with mixer={mixer}"
            )


def student_config(context: ObjectiveContext) -> Any:
    """The student's model config (``CocoLMConfig``) if the context has a student, else None."""
    student = context.student
    return getattr(getattr(student, "module", student), "config", None)
