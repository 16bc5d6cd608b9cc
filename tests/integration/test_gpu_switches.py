"""The paper-scale switches rehearsed end to end on CPU (issue: the GPU path before a GPU).

bf16 autocast and activation checkpointing, for NTP and for CoCoMix with cached labels: each run
trains, checkpoints, stops, resumes to the same losses and weights as a straight run, and
evaluates. Activation checkpointing recomputes the same activations, so it must equal the plain
fp32 run bit for bit; bf16 must differ from it (autocast is in effect, not silently off).
`torch.compile` (inductor, which builds C++ kernels on CPU: about a minute here) is rehearsed for
both: a compiled run stops, resumes and evaluates with no graph break, with the fp32 eager run's
losses up to kernel rounding. FSDP on two gloo processes is `test_distributed.py`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_concepts_training import CONCEPTS, SMALL_LM
from test_ntp_training import final_weights, train_losses

from cocomix.eval import evaluate_loaded, load_run
from cocomix.experiment import run_recipe

STEPS = ["steps=4", "log_every=1", "checkpoint_every=2", "validate_every=100", "valid.max_batches=1",
         "summary_test_tokens=0"]
RECIPES = {
    "ntp": ("pretrain/ntp", []),
    "cocomix_cached": ("pretrain/cocomix", [*CONCEPTS, "concepts=cached"]),
}
SWITCHES = {"bf16": "train.mixed_precision=bf16", "activation_checkpointing": "train.activation_checkpointing=true"}


@pytest.fixture(scope="module")
def fp32_runs(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fp32")
    runs = {}
    for name, (recipe, extra) in RECIPES.items():
        labels = [f"concepts.path={root / 'labels'}"] if name == "cocomix_cached" else []
        runs[name] = run_recipe(recipe, SMALL_LM + extra + STEPS + labels, root / name)[0].path
    return runs


@pytest.mark.parametrize("switch", list(SWITCHES))
@pytest.mark.parametrize("name", list(RECIPES))
def test_switch_trains_resumes_exactly_and_evaluates(
    name: str, switch: str, fp32_runs: dict[str, Path], tmp_path: Path
) -> None:
    recipe, extra = RECIPES[name]
    overrides = SMALL_LM + extra + STEPS + [SWITCHES[switch]]

    def labels(tag: str) -> list[str]:
        return [f"concepts.path={tmp_path / tag}"] if name == "cocomix_cached" else []

    [straight] = run_recipe(recipe, overrides + labels("straight"), tmp_path / "straight")
    run_recipe(recipe, overrides + labels("split") + ["stop_at=2"], tmp_path / "split")
    [resumed] = run_recipe(recipe, overrides + labels("split"), tmp_path / "split")
    assert train_losses(resumed.path) == train_losses(straight.path)
    a, b, fp32 = final_weights(straight.path), final_weights(resumed.path), final_weights(fp32_runs[name])
    assert all(torch.equal(a[key], b[key]) for key in a)
    same_as_fp32 = all(torch.equal(a[key], fp32[key]) for key in a)
    assert same_as_fp32 == (switch == "activation_checkpointing")

    result = evaluate_loaded(load_run(resumed.path), tasks=["ppl"], max_tokens=512)
    assert result["step"] == 4 and math.isfinite(result["ppl"]["pd_english/all"]["nll"])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RECIPES))
def test_compiled_run_trains_resumes_and_evaluates(name: str, fp32_runs: dict[str, Path], tmp_path: Path) -> None:
    from torch._dynamo.utils import counters

    recipe, extra = RECIPES[name]
    labels = [f"concepts.path={tmp_path / 'labels'}"] if name == "cocomix_cached" else []
    overrides = SMALL_LM + extra + STEPS + ["train.compile=true", *labels]
    counters.clear()
    run_recipe(recipe, [*overrides, "stop_at=2"], tmp_path)
    assert counters["stats"]["unique_graphs"] > 0  # compiled, in this process
    assert not counters["graph_break"], dict(counters["graph_break"])  # whole blocks, not pieces
    [resumed] = run_recipe(recipe, overrides, tmp_path)
    compiled, eager = train_losses(resumed.path), train_losses(fp32_runs[name])
    assert sorted(compiled) == sorted(eager) == [1, 2, 3, 4]
    # Inductor fuses kernels, so the bits may differ from eager; the training does not.
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-4)
    result = evaluate_loaded(load_run(resumed.path), tasks=["ppl"], max_tokens=512)
    assert result["step"] == 4 and math.isfinite(result["ppl"]["pd_english/all"]["nll"])
