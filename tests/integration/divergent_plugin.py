"""A third-party objective registered from outside the package (recipe key `plugins:`): plain NTP
that turns its loss (or, with `nan_in=grad`, only its gradients) into NaN from the third
micro-batch on, to exercise divergence handling."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig
from cocomix.registry import OBJECTIVES
from cocomix.types import ConceptLM, LossOutput, TokenBatch


@dataclass
class DivergentConfig(NtpConfig):
    nan_from_call: int = 3
    nan_in: str = "loss"
    """loss | grad (a finite loss whose backward gives NaN, as an overflow in backward would)."""


@OBJECTIVES.register("divergent_ntp", DivergentConfig)
class DivergentNtp(NextTokenPrediction):
    def __init__(self, config: DivergentConfig, context: object = None) -> None:
        super().__init__(config)
        self.calls = 0

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        out = super().compute(model, batch)
        self.calls += 1
        if self.calls >= self.config.nan_from_call:
            if self.config.nan_in == "grad":
                # sqrt at 0: the value is 0, its derivative inf, times d(x^2)/dx = 0 gives NaN.
                zero = out.loss - out.loss.detach()
                out.loss = out.loss + torch.sqrt(zero * zero)
            else:
                out.loss = out.loss * float("nan")
        return out
