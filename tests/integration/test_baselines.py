"""Every baseline and ablation objective trains through the real runtime (small, few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cocomix.runtime.launch import run_recipe

from test_concepts_training import CONCEPTS, SMALL_LM

FEW = ["steps=4", "checkpoint_every=2", "validate_every=2", "seeds=[0]", "summary_test_tokens=0"]


def last_train_record(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics" / "train.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "arms", "metric"),
    [
        ("ablation/pause", ["ntp_pause", "kd_pause"], {"kd_pause": "loss_kd"}),
        ("ablation/components", ["prediction_only", "mixing_only"], {"prediction_only": "loss_concept"}),
        ("ablation/hidden_state_prediction", ["hidden_cosine"], {"hidden_cosine": "loss_hidden"}),
    ],
)
def test_arms_train_and_log_their_terms(
    recipe: str, arms: list[str], metric: dict[str, str], tmp_path: Path, artifact_cache: Path
) -> None:
    only = f"only_arms=[{','.join(arms)}]"
    runs = run_recipe(recipe, SMALL_LM + CONCEPTS + FEW + [only], tmp_path)
    assert sorted(run.arm for run in runs) == sorted(arms)
    for run in runs:
        record = last_train_record(run.path)
        assert record["Step"] == 4
        if run.arm in metric:
            assert record[metric[run.arm]] >= 0
        assert (run.path / "metrics" / "valid.jsonl").is_file()
