"""Exact resume for every objective family: N steps straight equal N/2, stop, resume, N/2.

Same loss at every logged step and bit-identical final weights on CPU. NTP is covered in
test_ntp_training.py; here KD (teacher logits), CoCoMix with online attribution (teacher forward
and backward every step), CoCoMix with cached labels (written during the first half, read back on
resume) and the pause mixer. Tiny: 4 steps of a 2-layer model, teacher and SAE shared per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_concepts_training import CONCEPTS, SMALL_LM, TEACHER
from test_ntp_training import final_weights, train_losses

from cocomix.experiment import run_recipe

STEPS = ["steps=4", "log_every=1", "checkpoint_every=2", "validate_every=100", "valid.max_batches=1"]

OBJECTIVES = {
    "kd": ("pretrain/ntp", ["objective=kd", TEACHER, "teacher.layer=0"]),
    "cocomix_online": ("pretrain/cocomix", CONCEPTS + ["concepts=attribution"]),
    "cocomix_cached": ("pretrain/cocomix", CONCEPTS + ["concepts=cached"]),
    "pause": ("pretrain/ntp", ["objective=pause"]),
}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_stop_and_resume_equals_straight_run(objective: str, tmp_path: Path, artifact_cache: Path) -> None:
    recipe, extra = OBJECTIVES[objective]
    overrides = SMALL_LM + extra + STEPS

    def labels(name: str) -> list[str]:
        # A fresh label cache per run, so the resumed run's labels are not the straight run's.
        return [f"concepts.path={tmp_path / name}"] if objective == "cocomix_cached" else []

    [straight] = run_recipe(recipe, overrides + labels("straight_labels"), tmp_path / "straight")
    split_runs = tmp_path / "split"
    run_recipe(recipe, overrides + labels("split_labels") + ["stop_at=2"], split_runs)
    [resumed] = run_recipe(recipe, overrides + labels("split_labels"), split_runs)

    expected = train_losses(straight.path)
    assert sorted(expected) == [1, 2, 3, 4]
    assert train_losses(resumed.path) == expected
    a, b = final_weights(straight.path), final_weights(resumed.path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if objective == "cocomix_cached":
        # The first half wrote chunks 0-1; the resumed half added 2-3 and read none twice.
        assert len(list((tmp_path / "split_labels").glob("chunk-*.npy"))) == 4
