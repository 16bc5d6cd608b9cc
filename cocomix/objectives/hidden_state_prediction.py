"""Direct hidden-state prediction: Fig. 6b's alternative to concept prediction (brief §2.4).

loss = CE_next_token + lambda · D(g(h_t), h_con_t),   D in {l1, l2, cosine}

The student's concept head is a 2-layer MLP g (``cocomix.concepts.hidden_head.HiddenStateHead``)
that predicts the frozen teacher's hidden state h_con at the SAE layer, from the student's state
at the insert layer; g(h) is compressed (d_con -> d) and interleaved as CoCoMix's c_hat is
(``implied_mixer="interleave"`` in its contract). The paper's result: all three losses are worse
than concept prediction. [unconfirmed] in the paper, our choices: lambda = 0.1 (CoCoMix's), MLP width 4·d,
the target LN-normalised (the ``teacher_hidden`` source's default), the loss as in
``terms.hidden_state_loss`` (l1/l2 averaged per element, cosine per position).

The targets come from ``concepts=teacher_hidden`` (``ConceptBatch.hidden``); no SAE is needed.
``model_overrides`` tells the runtime to build the ``hidden`` head with this objective's MLP
width; ``model.teacher_dim`` must be set to the teacher's hidden size (the source's
``hidden_dim``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from cocomix.contracts import MetricValues, ObjectiveContract
from cocomix.objectives.base import Objective, ObjectiveContext, student_config
from cocomix.objectives.terms import HIDDEN_LOSSES, hidden_state_loss, next_token_loss
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class HiddenStatePredictionConfig:
    lam: float = 0.1
    """Weight of the hidden-state loss (paper: not stated; CoCoMix's lambda)."""
    loss: str = "l2"
    """``l1``, ``l2`` (mean squared error) or ``cosine`` (1 - cos), the three arms of Fig. 6b."""
    mlp_hidden: int = 0
    """Inner width of the MLP g; 0 = 4 * model_dim (copied to ``model.concept_mlp_hidden``)."""


@dataclass(frozen=True)
class HiddenStateMetrics(MetricValues):
    loss_lm: Tensor
    loss_hidden: Tensor


def _hidden_head(config: Any) -> dict[str, Any]:
    """The student predicts the teacher's hidden state with an MLP head (brief §2.4)."""
    return {"concept_head": "hidden", "concept_mlp_hidden": int(config.mlp_hidden)}


@OBJECTIVES.register("hidden_state_prediction", HiddenStatePredictionConfig)
class HiddenStatePrediction(Objective):
    contract = ObjectiveContract(
        metrics=HiddenStateMetrics, concept_head=True, concept_source=True,
        concept_compressor=True, implied_mixer="interleave", model_overrides=_hidden_head,
    )

    def __init__(self, config: HiddenStatePredictionConfig, context: ObjectiveContext) -> None:
        super().__init__()
        name = self.objective_name()
        if config.lam < 0:
            raise CocomixError(f"objective.lam={config.lam} must be >= 0")
        if config.loss not in HIDDEN_LOSSES:
            raise CocomixError(
                f"objective.loss={config.loss!r}; choose one of {', '.join(HIDDEN_LOSSES)}"
            )
        if config.mlp_hidden < 0:
            raise CocomixError(f"objective.mlp_hidden={config.mlp_hidden} must be >= 0 (0 = 4·d)")
        source = context.concept_source
        hidden_dim = int(getattr(source, "hidden_dim", 0) or 0)
        if source is None or hidden_dim <= 0:
            raise CocomixError(f"objective={name} needs concepts=teacher_hidden")
        self.check_student(context)
        model_config = student_config(context)
        if model_config is not None:
            head, width = model_config.concept_head, model_config.teacher_dim
            if head != "hidden" or width != hidden_dim:
                raise CocomixError(
                    f"objective={name} needs model.concept_head=hidden with "
                    f"model.teacher_dim={hidden_dim} (the teacher's hidden size); the student "
                    f"has concept_head={head}, teacher_dim={width}"
                )
        self.config = config
        # Not a submodule: the frozen teacher behind the source stays out of the optimizer.
        self.__dict__["source"] = source

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        name = self.objective_name()
        targets = self.source.targets(batch.inputs, sample_index=batch.sample_index)
        if targets.hidden is None:
            raise CocomixError(f"objective={name} needs concepts=teacher_hidden")
        out = model.forward_lm(batch.inputs)
        if out.concept_prediction is None:
            raise CocomixError(
                f"objective={name} needs a student with a hidden-state head "
                f"(model.concept_head=hidden, model.teacher_dim>0)"
            )
        loss_lm = next_token_loss(out.logits, batch.targets)
        loss_hidden = hidden_state_loss(out.concept_prediction, targets.hidden, self.config.loss)
        loss = loss_lm + self.config.lam * loss_hidden
        metrics = HiddenStateMetrics(loss_lm=loss_lm.detach(), loss_hidden=loss_hidden.detach())
        return LossOutput(loss=loss, num_targets=batch.targets.numel(), metrics=metrics)


__all__ = ["HiddenStateMetrics", "HiddenStatePrediction", "HiddenStatePredictionConfig"]
