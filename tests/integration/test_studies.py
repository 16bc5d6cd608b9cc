"""The study recipes end to end, small: the positive control (true vs random latent labels) and
the teacher-strength map with its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_concepts_training import CONCEPTS, SMALL_LM

from cocomix.experiment import run_recipe

FEW = ["steps=4", "checkpoint_every=2", "validate_every=2", "seeds=[0]"]
SYNTHETIC = ["data.train_tokens=20000", "data.valid_tokens=4000", "data.test_tokens=0", "data.num_words=256"]


def last_record(run: Path, split: str) -> dict[str, float]:
    return json.loads((run / "metrics" / f"{split}.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow
def test_positive_control_trains_every_arm_with_true_and_random_labels(tmp_path: Path, artifact_cache: Path) -> None:
    small = [o for o in SMALL_LM if not o.startswith("tokenizer.")]
    runs = run_recipe("study/positive_control", small + FEW + SYNTHETIC, tmp_path)
    assert {run.arm for run in runs} == {"ntp", "true_interleave", "true_add", "true_interleave_residual",
                                         "random_interleave", "random_add", "ntp_sum2", "true_add_sum2"}
    for run in runs:
        record = last_record(run.path, "train")
        assert record["Step"] == 4
        if not run.arm.startswith("ntp"):
            assert record["loss_concept"] > 0
        artifacts = json.loads((run.path / "artifacts.json").read_text())
        assert "teacher" not in artifacts and "sae" not in artifacts  # labels need neither
    root = tmp_path / "study" / "positive_control"
    summary = json.loads((root / "summary.json").read_text())
    # The 17-way concept head is small next to the model: NTP needs no widening to match it.
    assert summary["arms"]["true_add"]["params_active"] < summary["arms"]["ntp"]["params_active"] * 1.02
    text = (root / "summary.md").read_text()
    assert "Tokens to reach the final validation loss of baseline 'ntp'" in text
    rows = {r["arm"]: r for r in json.loads((root / "paired_vs_ntp.json").read_text())}
    assert rows["true_add_sum2"]["ntp_valid_loss_mean"] != rows["true_add"]["ntp_valid_loss_mean"]


@pytest.mark.slow
def test_teacher_strength_pairs_arms_with_ntp_and_plots_against_the_teacher(
    tmp_path: Path, artifact_cache: Path
) -> None:
    arms = "only_arms=[ntp_200,kd_base_200,add_strong_200]"
    runs = run_recipe("study/teacher_strength", SMALL_LM + CONCEPTS + FEW + [arms, "summary_test_tokens=0"], tmp_path)
    assert sorted(run.arm for run in runs) == ["add_strong_200", "kd_base_200", "ntp_200"]
    out = tmp_path / "study" / "teacher_strength"
    rows = json.loads((out / "teacher_strength.json").read_text())
    assert {(r["method"], r["budget"]) for r in rows} == {("kd", 4), ("cocomix/add", 4)}
    teachers = {r["method"]: r["teacher"] for r in rows}
    assert teachers["kd"] != teachers["cocomix/add"]  # pretrain/teacher vs pretrain/teacher_strong
    assert all(r["teacher_valid_loss"] > 0 and len(r["deltas"]) == 1 for r in rows)
    assert (out / "teacher_strength.png").stat().st_size > 0
    assert "Teacher strength" in (out / "summary.md").read_text()


def test_label_control_trains_true_and_mismatched_labels_from_one_cache(tmp_path: Path, artifact_cache: Path) -> None:
    arms = "only_arms=[ntp,add,add_mismatched]"
    runs = run_recipe("study/label_control", SMALL_LM + CONCEPTS + FEW + [arms, "summary_test_tokens=0"], tmp_path)
    by_arm = {run.arm: run.path for run in runs}
    assert sorted(by_arm) == ["add", "add_mismatched", "ntp"]
    caches = {arm: json.loads((by_arm[arm] / "artifacts.json").read_text())["label_cache"]
              for arm in ("add", "add_mismatched")}
    assert caches["add"] == caches["add_mismatched"]  # the control reads the same cached labels
    true, control = (last_record(by_arm[arm], "train") for arm in ("add", "add_mismatched"))
    assert true["loss_concept"] != control["loss_concept"]  # ... paired with other windows
    rows = json.loads((tmp_path / "study" / "label_control" / "paired_vs_ntp.json").read_text())
    assert {row["arm"] for row in rows} == {"add", "add_mismatched"}
