"""Concept prediction only: Fig. 6d's component (i) (brief §2.7).

loss = CE_next_token + lambda · L_concept(z_t)

CoCoMix's concept loss on a head at the insert layer, with no compression and no interleaving: the
concept logits are an auxiliary output that no later block reads. So the objective is CoCoMix's
loss on a model with ``mixer=none`` (its contract's ``implied_mixer="none"``: another mixer is
refused, since mixing would make it CoCoMix or "add") and a head without compressor
(``concept_compressor=False`` and the mixer reads no concept, so the runtime sets
``model.concept_compress=false``). The head is then ``pre_bias`` + predictor only; it counts as
inactive, which reproduces Fig. 6d's parameter legend (prediction-only counted like NTP, 53M).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cocomix.objectives.base import ObjectiveContext, student_config
from cocomix.objectives.cocomix import CoCoMix, CoCoMixConfig
from cocomix.registry import OBJECTIVES, CocomixError


@dataclass
class ConceptPredictionOnlyConfig(CoCoMixConfig):
    """``lam``: weight of the concept loss (the paper's lambda = 0.1, as for CoCoMix)."""


@OBJECTIVES.register("concept_prediction_only", ConceptPredictionOnlyConfig)
class ConceptPredictionOnly(CoCoMix):
    contract = replace(CoCoMix.contract, implied_mixer="none", concept_compressor=False)

    def __init__(self, config: ConceptPredictionOnlyConfig, context: ObjectiveContext) -> None:
        super().__init__(config, context)
        config_ = student_config(context)
        if config_ is not None and getattr(config_, "concept_compress", False):
            # An unused compressor would still be weight-decayed and counted (Fig. 6d: 53M).
            raise CocomixError(
                "objective=concept_prediction_only trains a head without compressor; the student "
                "was built with model.concept_compress=true"
            )


__all__ = ["ConceptPredictionOnly", "ConceptPredictionOnlyConfig"]
