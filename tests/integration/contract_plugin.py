"""A third-party objective that breaks the objective contract in the way `objective.breach`
names, to check that the train unit names the objective instead of failing inside torch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig
from cocomix.registry import OBJECTIVES
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class BreachConfig(NtpConfig):
    breach: str = "raises"
    """raises | per_token | detached | plain_float | undeclared_metric"""


@OBJECTIVES.register("contract_breach", BreachConfig)
class ContractBreach(NextTokenPrediction):
    def __init__(self, config: BreachConfig, context: object = None) -> None:
        super().__init__(config)
        self.breach = config.breach

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        if self.breach == "raises":
            raise KeyError("concept_ids")
        out = model.forward_lm(batch.inputs)
        per_token = torch.nn.functional.cross_entropy(
            out.logits.flatten(0, 1), batch.targets.flatten(), reduction="none")
        loss = {"per_token": per_token, "detached": per_token.mean().detach(),
                "plain_float": float(per_token.mean())}.get(self.breach, per_token.mean())
        metrics = {"my_metric": per_token.mean().detach()} if self.breach == "undeclared_metric" else {}
        return LossOutput(loss=loss, num_targets=batch.targets.numel(), metrics=metrics)  # type: ignore[arg-type]
