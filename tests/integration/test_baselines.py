"""Every baseline and ablation objective trains through the real runtime (small, few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_concepts_training import CONCEPTS, SMALL_LM

from cocomix.experiment import run_recipe

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


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "arm", "extra"),
    [
        ("kd/strong_teacher", "kd", []),
        ("kd/weak_to_strong", "cocomix", []),
        ("kd/distribution_shift", "cocomix", ["data.max_files=40", "data.valid_fraction=0.2"]),
        ("ablation/attribution_vs_activation", "activation", []),
    ],
)
def test_recipe_arm_trains(recipe: str, arm: str, extra: list[str], tmp_path: Path, artifact_cache: Path) -> None:
    (run,) = run_recipe(recipe, SMALL_LM + CONCEPTS + FEW + extra + [f"only_arms=[{arm}]"], tmp_path)
    assert run.arm == arm and last_train_record(run.path)["Step"] == 4


@pytest.mark.slow
def test_sample_efficiency_reports_tokens_to_reach_ntp(tmp_path: Path, artifact_cache: Path) -> None:
    run_recipe("paper/sample_efficiency", SMALL_LM + CONCEPTS + FEW, tmp_path)
    result = json.loads((tmp_path / "paper" / "sample_efficiency" / "compare" / "compare.json").read_text())
    assert result["baseline"] == "ntp"
    rows = {row["arm"]: row for row in result["tokens_to_reach"]}
    assert set(rows) == {"ntp", "cocomix"}
    # NTP reaches its own final loss exactly at its last validation point: 0% saved.
    assert rows["ntp"]["tokens_saved"] == pytest.approx(0.0, abs=1e-9)
    assert "Tokens to reach" in (tmp_path / "paper" / "sample_efficiency" / "summary.md").read_text()


@pytest.mark.slow
def test_compression_weights_histogram_and_fraction(tmp_path: Path, artifact_cache: Path) -> None:
    from cocomix.analysis.reports import compression_column_norms

    (run,) = run_recipe("analysis/compression_weights", SMALL_LM + CONCEPTS + FEW, tmp_path)
    out = tmp_path / "analysis" / "compression_weights"
    assert (out / "compression_weight_norms.png").stat().st_size > 0
    (row,) = json.loads((out / "compression_weights.json").read_text())
    norms = compression_column_norms(run.path)
    assert row["concepts"] == norms.numel() == 128  # sae.n_latents in CONCEPTS
    assert row["fraction_below_1e-2"] == pytest.approx(float((norms < 1e-2).float().mean()))


def test_unknown_report_and_baseline_fail_before_training(tmp_path: Path) -> None:
    from cocomix.registry import CocomixError

    with pytest.raises(CocomixError, match="reports: unknown"):
        run_recipe("analysis/compression_weights", ["reports=[histgram]"], tmp_path)
    with pytest.raises(CocomixError, match="baseline_arm='nope'"):
        run_recipe("paper/sample_efficiency", ["baseline_arm=nope"], tmp_path)
    assert not any(tmp_path.iterdir())
