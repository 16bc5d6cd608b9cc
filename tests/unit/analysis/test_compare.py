"""compare: tables, config differences, tokens to reach the baseline, and the PNG plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cocomix.analysis.compare import reach, read_jsonl
from cocomix.analysis.compare_report import compare
from cocomix.registry import CocomixError

NTP = [[5.0, 4.0, 3.5, 3.2], [5.2, 4.2, 3.6, 3.4]]     # final mean 3.3
ADD = [[4.6, 3.6, 3.2, 3.0], [4.8, 3.8, 3.2, 3.0]]     # mean 4.7, 3.7, 3.2, 3.0


@pytest.fixture
def recipe_dir(tmp_path: Path, fake_run: Callable[..., Path]) -> Path:
    root = tmp_path / "runs" / "ablation" / "add_vs_mix"
    for seed, losses in enumerate(NTP):
        fake_run(root / "ntp" / f"seed{seed}", losses, config_extra={"seed": seed})
    for seed, losses in enumerate(ADD):
        fake_run(root / "add" / f"seed{seed}", losses, config_extra={
            "seed": seed, "mixer": {"name": "add"}, "objective": {"name": "cocomix", "lam": 0.1}})
    return root


def test_reach_interpolates_and_says_not_reached() -> None:
    x = np.array([10.0, 20.0, 30.0])
    loss = np.array([5.0, 4.0, 3.0])
    assert reach(x, loss, 4.5) == pytest.approx(15.0)
    assert reach(x, loss, 6.0) == 10.0  # already below at the first point
    assert reach(x, loss, 2.0) is None


def test_compare_writes_plots_and_tables(recipe_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    text, files = compare([recipe_dir], out)
    names = {p.name for p in files}
    assert {"valid_loss_vs_tokens.png", "valid_loss_vs_flops.png", "compare.md", "compare.json"} == names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # The baseline (ntp, default) comes first; mean +- std over the two seeds.
    arms = text.split("## Arms")[1].split("##")[0]
    assert arms.index("| ntp | 2 | 3.3000 ± 0.1414") < arms.index("| add | 2 | 3.0000 ± 0.0000")
    # Only the arm-defining keys differ (the seed is not a config difference here).
    diff = text.split("## Config keys that differ")[1].split("##")[0]
    assert "mixer.name" in diff and "objective.name" in diff and "seed" not in diff
    # add reaches ntp's final 3.3 between step 20 (3.7) and 30 (3.2): 20 + 0.4/0.5*10 = 28 steps.
    report = json.loads((out / "compare.json").read_text())
    [row] = [r for r in report["tokens_to_reach"] if r["arm"] == "add"]
    assert row["tokens"] == pytest.approx(28 * 512)
    assert row["tokens_saved"] == pytest.approx(1 - 28 / 40)
    assert "30.0%" in text
    # The add arm has no concept head here, so both arms cost the same FLOPs per token.
    assert row["flops_saved"] == pytest.approx(row["tokens_saved"])


def test_not_reached_is_said(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    root = tmp_path / "runs" / "r" / "x"
    fake_run(root / "ntp" / "seed0", [4.0, 3.0])
    fake_run(root / "slow" / "seed0", [4.5, 3.5])
    text, _ = compare([root], tmp_path / "out")
    assert "| slow | not reached | - |" in text


def test_bad_inputs(tmp_path: Path, recipe_dir: Path) -> None:
    with pytest.raises(CocomixError, match="does not exist"):
        compare([tmp_path / "nope"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CocomixError, match="neither a run folder"):
        compare([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(CocomixError, match="baseline arm 'mix'"):
        compare([recipe_dir], tmp_path / "out", baseline="mix")


def test_replayed_steps_of_a_resumed_run_count_once(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [{"Step": 1, "Loss": 5.0}, {"Step": 2, "Loss": 4.0}, {"Step": 3, "Loss": 3.9},
            {"Step": 3, "Loss": 3.5}, {"Step": 4, "Loss": 3.0}]  # killed after 3, resumed from 2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(r["Step"], r["Loss"]) for r in read_jsonl(path)] == [(1, 5.0), (2, 4.0), (3, 3.5), (4, 3.0)]


def test_a_seed_counts_once_and_runs_of_an_arm_end_together(
    tmp_path: Path, fake_run: Callable[..., Path], recipe_dir: Path,
) -> None:
    copy = tmp_path / "elsewhere" / "ablation" / "add_vs_mix" / "ntp" / "seed0"  # same arm and seed
    fake_run(copy, NTP[0], config_extra={"seed": 0})
    with pytest.raises(CocomixError, match=r"arm 'ntp' has two runs of seed 0 .*--allow-mixed"):
        compare([recipe_dir / "ntp" / "seed0", recipe_dir / "ntp" / "seed1", copy], tmp_path / "out")
    text, _ = compare([recipe_dir / "ntp" / "seed0", copy], tmp_path / "out", allow_mixed=True)
    assert "| ntp | 2 |" in text

    short = tmp_path / "short" / "ablation" / "add_vs_mix" / "ntp" / "seed2"  # 2 of 4 validations
    fake_run(short, NTP[1][:2], config_extra={"seed": 2})
    with pytest.raises(CocomixError, match=r"runs of arm 'ntp' end at different steps \[20, 40\]"):
        compare([recipe_dir / "ntp" / "seed0", short], tmp_path / "out")
    text, _ = compare([recipe_dir / "ntp" / "seed0", short], tmp_path / "out", allow_mixed=True)
    assert "end at different steps [20, 40]" in text
