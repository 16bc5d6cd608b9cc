"""Next-token prediction: the baseline objective (paper §2.1, Table 1 "NTP")."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from cocomix.contracts import MetricValues, ObjectiveContract
from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.objectives.terms import next_token_loss
from cocomix.registry import OBJECTIVES
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class NtpConfig:
    """NTP has no options: the loss is the mean shifted cross-entropy."""


@dataclass(frozen=True)
class NTPMetrics(MetricValues):
    loss_lm: Tensor
    """The next-token cross-entropy (equal to the loss for NTP itself)."""


@OBJECTIVES.register("ntp", NtpConfig)
class NextTokenPrediction(Objective):
    contract = ObjectiveContract(metrics=NTPMetrics)

    def __init__(self, config: NtpConfig, context: ObjectiveContext | None = None) -> None:
        super().__init__()
        self.config = config

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        out = model.forward_lm(batch.inputs)
        loss = next_token_loss(out.logits, batch.targets)
        metrics = NTPMetrics(loss_lm=loss.detach())
        return LossOutput(loss=loss, num_targets=batch.targets.numel(), metrics=metrics)


__all__ = ["NTPMetrics", "NextTokenPrediction", "NtpConfig"]
