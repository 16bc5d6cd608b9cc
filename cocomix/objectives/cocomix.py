"""CoCoMix: next-token prediction plus concept prediction, with the predicted concepts mixed back
into the residual stream (paper §2.2, Eq. 4; the mixing itself is the model's mixer).

loss = CE_next_token + lambda * (1/K_attr) sum_{i in I} CE(z_t, i)

The labels I (top K_attr attributed SAE latents of the frozen teacher) come from the run's concept
source; the concept logits z_t come from the student's concept head at the insert layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from cocomix.contracts import MetricValues, ObjectiveContract
from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.objectives.terms import concept_hit_rate, concept_loss, next_token_loss
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class CoCoMixConfig:
    lam: float = 0.1
    """Weight of the concept loss (paper: lambda = 0.1)."""


@dataclass(frozen=True)
class CoCoMixMetrics(MetricValues):
    loss_lm: Tensor
    loss_concept: Tensor
    concept_acc: Tensor
    """Share of the labels among the student's top-k concept logits."""


@OBJECTIVES.register("cocomix", CoCoMixConfig)
class CoCoMix(Objective):
    contract = ObjectiveContract(metrics=CoCoMixMetrics, concept_head=True, concept_source=True)

    def __init__(self, config: CoCoMixConfig, context: ObjectiveContext) -> None:
        super().__init__()
        name = self.objective_name()
        if config.lam < 0:
            raise CocomixError(f"objective.lam={config.lam} must be >= 0")
        source = context.concept_source
        if source is None:
            raise CocomixError(
                f"objective={name} needs a concept source (concepts=attribution, ...)"
            )
        self.check_student(context)
        self.config = config
        student = context.student
        # The student's TopK width k, for the hit-rate metric (labels among its top-k concepts).
        self.topk = int(getattr(getattr(student, "config", None), "concept_topk", 0) or 0)
        # Not a submodule: the frozen teacher and SAE stay out of the student's state and optimizer.
        self.__dict__["source"] = source

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        targets = self.source.targets(batch.inputs, sample_index=batch.sample_index)
        name = self.objective_name()
        if targets.labels is None:
            raise CocomixError(
                f"objective={name} needs concept labels; the concept source gives none"
            )
        out = model.forward_lm(batch.inputs)
        if out.concept_logits is None:
            raise CocomixError(f"objective={name} needs a student with a concept head")
        loss_lm = next_token_loss(out.logits, batch.targets)
        loss_concept = concept_loss(out.concept_logits, targets.labels)
        loss = loss_lm + self.config.lam * loss_concept
        k = self.topk or targets.labels.size(-1)
        metrics = CoCoMixMetrics(
            loss_lm=loss_lm.detach(),
            loss_concept=loss_concept.detach(),
            concept_acc=concept_hit_rate(out.concept_logits.detach(), targets.labels, k),
        )
        return LossOutput(loss=loss, num_targets=batch.targets.numel(), metrics=metrics)


__all__ = ["CoCoMix", "CoCoMixConfig", "CoCoMixMetrics"]
