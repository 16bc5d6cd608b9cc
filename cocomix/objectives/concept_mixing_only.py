"""Concept mixing only: Fig. 6d's component (ii) (brief §2.7).

loss = CE_next_token            (lambda = 0: no concept loss, so no concept labels)

The full CoCoMix architecture (predictor, TopK, compressor, interleaving; ``implied_mixer =
"interleave"`` in its contract) trained by the LM loss alone: the predictor learns only through the kept TopK
logits that reach the compressor (brief §1.4). Nothing ties its C outputs to SAE concepts, so no
concept source, teacher or SAE is built (``concept_source=False``); the head width C is
the recipe's ``model.num_concepts`` (the paper's 32768 at paper size). A 69M-active model, like
CoCoMix. The paper's finding: mixing alone has "limited impact".
"""

from __future__ import annotations

from dataclasses import dataclass

from cocomix.contracts import ObjectiveContract
from cocomix.objectives.base import Objective, ObjectiveContext, student_config
from cocomix.objectives.ntp import NTPMetrics
from cocomix.objectives.terms import next_token_loss
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class ConceptMixingOnlyConfig:
    """No options: the loss is NTP's on the CoCoMix architecture."""


@OBJECTIVES.register("concept_mixing_only", ConceptMixingOnlyConfig)
class ConceptMixingOnly(Objective):
    contract = ObjectiveContract(
        metrics=NTPMetrics, concept_head=True, concept_compressor=True, implied_mixer="interleave"
    )

    def __init__(
        self, config: ConceptMixingOnlyConfig, context: ObjectiveContext | None = None
    ) -> None:
        super().__init__()
        context = context or ObjectiveContext()
        self.check_student(context)
        config_ = student_config(context)
        if config_ is not None and getattr(config_, "concept_head", "sae") != "sae":
            raise CocomixError(
                f"objective=concept_mixing_only mixes SAE-shaped concepts; the student was built "
                f"with model.concept_head={config_.concept_head}"
            )
        self.config = config

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        out = model.forward_lm(batch.inputs)
        if out.concept_logits is None:
            raise CocomixError(
                "objective=concept_mixing_only needs a student with a concept head "
                "(set model.num_concepts)"
            )
        loss = next_token_loss(out.logits, batch.targets)
        return LossOutput(
            loss=loss, num_targets=batch.targets.numel(), metrics=NTPMetrics(loss_lm=loss.detach())
        )


__all__ = ["ConceptMixingOnly", "ConceptMixingOnlyConfig"]
