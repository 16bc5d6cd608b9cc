"""The objective interface: compute a loss and named metrics; the trainer owns the step.

An objective never calls backward, clips, steps or logs (DESIGN.md "Objectives"). It sees the
student through `cocomix.types.ConceptLM`, so this package imports with torch alone.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class ObjectiveContext:
    """What the runtime hands an objective factory besides its own options."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Built once by the runtime and shared (e.g. a frozen teacher, an SAE, a label cache)."""


class Objective(nn.Module, abc.ABC):
    """A training loss. Subclass, then `@OBJECTIVES.register("name", MyConfig)`.

    Frozen auxiliary modules (teachers, SAEs) must not be registered as submodules of the
    student; keep them on the objective and out of the optimizer (the trainer only optimises the
    model's parameters).
    """

    metric_names: tuple[str, ...] = ()
    """Names of the extra metrics `compute` returns (declared so they can be pre-registered)."""

    requires_concept_head: bool = False
    """The student needs a concept head (predictor, TopK, compressor) for this objective."""

    requires_concept_source: bool = False
    """The objective reads concept targets (`concepts=` must not be `none`)."""

    @abc.abstractmethod
    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        """Loss on one micro-batch; ``batch.inputs`` predict ``batch.targets``."""
