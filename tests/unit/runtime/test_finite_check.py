"""The divergence check reads the loss on the host once per optimizer step, not per micro-batch,
and still stops before the optimizer sees a non-finite micro-batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cocomix.runtime.units import DivergenceError, ObjectiveTrainUnit


def unit(tmp_path: Path, accumulate: int) -> ObjectiveTrainUnit:
    return ObjectiveTrainUnit(nn.Linear(2, 2), None, tmp_path / "checkpoints", 1.0,  # type: ignore[arg-type]
                              accumulate=accumulate)


def test_nan_in_an_early_micro_batch_raises_at_the_last(tmp_path: Path) -> None:
    u = unit(tmp_path, accumulate=3)
    u.set_step_nr(7)
    u._check_finite(torch.tensor(2.0))
    u._check_finite(torch.tensor(float("nan")))  # no host sync yet: nothing raised
    with pytest.raises(DivergenceError, match="the loss is nan at step 7"):
        u._check_finite(torch.tensor(1.0))


def test_finite_steps_pass_and_each_step_starts_afresh(tmp_path: Path) -> None:
    u = unit(tmp_path, accumulate=2)
    for step in (1, 2):
        u.set_step_nr(step)
        u._check_finite(torch.tensor(1.0))
        u._check_finite(torch.tensor(3.0))
    u.set_step_nr(3)
    with pytest.raises(DivergenceError, match="the loss is inf at step 3"):
        u._check_finite(torch.tensor(float("inf")))
        u._check_finite(torch.tensor(1.0))
