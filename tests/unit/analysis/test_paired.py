"""The paired reports: arms paired with NTP by seed, budget and data; x = teacher strength."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cocomix.analysis.paired import paired_vs_ntp, plot_series, teacher_strength
from cocomix.registry import CocomixError


def teacher(root: Path, name: str, loss: float) -> Path:
    path = root / "teachers" / name
    (path / "metrics").mkdir(parents=True)
    (path / "metrics" / "valid.jsonl").write_text(json.dumps({"Step": 100, "Loss": loss}) + "\n")
    return path


@pytest.fixture
def study(tmp_path: Path, fake_run: Callable[..., Path]) -> tuple[Path, list[Path]]:
    weak, strong = teacher(tmp_path, "weak", 6.8), teacher(tmp_path, "strong", 5.0)
    root = tmp_path / "runs" / "study" / "teacher_strength"
    kd = {"steps": 20, "objective": {"name": "kd"}}
    runs = []
    for seed, offset in ((0, 0.0), (1, 0.1)):
        runs.append(fake_run(root / "ntp_20" / f"seed{seed}", [6.5, 6.3 + offset],
                             config_extra={"steps": 20}))
        runs.append(fake_run(root / "kd_weak_20" / f"seed{seed}", [6.6, 6.4 + offset],
                             config_extra=kd, artifacts={"teacher": str(weak)}))
        runs.append(fake_run(root / "kd_strong_20" / f"seed{seed}", [6.4, 6.2 + 2 * offset],
                             config_extra=kd, artifacts={"teacher": str(strong)}))
    return root, runs


def test_rows_pair_each_arm_with_ntp_of_the_same_seed(study: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, runs = study
    text = teacher_strength(runs, tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "teacher_strength.json").read_text())
    by_teacher = {r["teacher_valid_loss"]: r for r in rows}
    assert set(by_teacher) == {6.8, 5.0}
    weak, strong = by_teacher[6.8], by_teacher[5.0]
    assert weak["deltas"] == pytest.approx([0.1, 0.1]) and weak["delta_std"] == pytest.approx(0.0)
    assert strong["deltas"] == pytest.approx([-0.1, 0.0])
    assert strong["delta_mean"] == pytest.approx(-0.05)
    # NTP's mean final loss is 6.35; the strong arm's mean curve (6.4 -> 6.3) reaches it halfway
    # between its validations at steps 10 and 20; the weak arm's (6.6 -> 6.45) never does.
    assert strong["tokens_to_reach_ntp"] == pytest.approx(15 * 512)
    assert weak["tokens_to_reach_ntp"] is None
    assert (tmp_path / "out" / "teacher_strength.png").stat().st_size > 0
    assert "| kd_strong_20 | 20 | kd | 5.000 | 2 |" in text and "not reached" in text


def test_each_loss_weight_is_its_own_plot_line(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    weak, strong = teacher(tmp_path, "weak", 6.8), teacher(tmp_path, "strong", 5.0)
    root = tmp_path / "runs" / "study" / "teacher_strength"
    runs = [fake_run(root / "ntp_20" / "seed0", [6.5, 6.3], config_extra={"steps": 20})]
    for lam in (0.1, 0.3):
        for name, path in (("strong", strong), ("weak", weak)):
            cocomix = {"steps": 20, "objective": {"name": "cocomix", "lam": lam}, "mixer": {"name": "add"}}
            runs.append(fake_run(root / f"add_{name}_20_lam{lam}" / "seed0", [6.5, 6.2 + lam],
                                 config_extra=cocomix, artifacts={"teacher": str(path)}))
    teacher_strength(runs, tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "teacher_strength.json").read_text())
    assert sorted(r["lam"] for r in rows) == [0.1, 0.1, 0.3, 0.3]
    series = plot_series(rows, 20)
    assert list(series) == ["cocomix/add λ=0.1", "cocomix/add λ=0.3"]
    for lam, members in zip((0.1, 0.3), series.values(), strict=True):
        assert [r["arm"] for r in members] == [f"add_strong_20_lam{lam}", f"add_weak_20_lam{lam}"]
        assert [r["delta_mean"] for r in members] == pytest.approx([lam - 0.1] * 2)
    assert plot_series(rows, 800) == {}


def test_concept_arms_are_paired_with_kd_of_their_own_teacher(
    study: tuple[Path, list[Path]], tmp_path: Path, fake_run: Callable[..., Path]
) -> None:
    root, runs = study
    strong = tmp_path / "teachers" / "strong"
    cocomix = {"steps": 20, "objective": {"name": "cocomix", "lam": 0.3}, "mixer": {"name": "add"}}
    for seed, final in ((0, 6.0), (1, 6.5)):
        runs.append(fake_run(root / "add_strong_20" / f"seed{seed}", [6.5, final],
                             config_extra=cocomix, artifacts={"teacher": str(strong)}))
    runs.append(fake_run(root / "add_other_20" / "seed0", [6.5, 6.0], config_extra=cocomix,
                         artifacts={"teacher": str(teacher(tmp_path, "other", 5.5))}))
    runs.append(fake_run(root / "add_other_20" / "seed1", [6.5, 6.0], config_extra=cocomix,
                         artifacts={"teacher": str(tmp_path / "teachers" / "other")}))
    text = teacher_strength(runs, tmp_path / "out")
    rows = {r["arm"]: r for r in json.loads((tmp_path / "out" / "teacher_strength.json").read_text())}
    # kd_strong_20 ends at 6.2 (seed 0) and 6.4 (seed 1): the add arm is 0.2 below, then 0.1 above.
    assert rows["add_strong_20"]["kd_arm"] == "kd_strong_20"
    assert rows["add_strong_20"]["kd_deltas"] == pytest.approx([-0.2, 0.1])
    assert "kd_delta_mean" not in rows["add_other_20"]  # no KD run with that teacher
    assert "kd_delta_mean" not in rows["kd_strong_20"]
    lines = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert lines["add_strong_20"].endswith("| -0.0500 ± 0.2121 |")
    assert lines["add_other_20"].endswith("| - |") and lines["kd_strong_20"].endswith("| - |")


def test_an_arm_without_its_ntp_seed_is_refused(study: tuple[Path, list[Path]], tmp_path: Path) -> None:
    _, runs = study
    without_ntp_seed1 = [r for r in runs if not (r.parent.name == "ntp_20" and r.name == "seed1")]
    with pytest.raises(CocomixError, match=r"no ntp run with steps=20 on the same data for seed\(s\) \[1\]"):
        teacher_strength(without_ntp_seed1, tmp_path / "out")


def test_ntp_on_other_data_is_not_a_baseline(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    root = tmp_path / "runs" / "study" / "positive_control"
    easy = {"steps": 20, "data": {"name": "latent_topics", "arity": 1}}
    hard = {"steps": 20, "data": {"name": "latent_topics", "arity": 2}}
    concept = {"objective": {"name": "cocomix"}, "mixer": {"name": "add"}}
    runs = [fake_run(root / "ntp" / "seed0", [5.1, 5.0], config_extra=hard),
            fake_run(root / "ntp_easy" / "seed0", [4.0, 3.9], config_extra=easy),
            fake_run(root / "true_add" / "seed0", [4.6, 4.2], config_extra={**hard, **concept}),
            fake_run(root / "random_add" / "seed0", [5.2, 5.1], config_extra={**hard, **concept}),
            fake_run(root / "true_add_easy" / "seed0", [4.0, 3.95], config_extra={**easy, **concept})]
    text = paired_vs_ntp(runs, tmp_path / "out")
    rows = {r["arm"]: r for r in json.loads((tmp_path / "out" / "paired_vs_ntp.json").read_text())}
    assert rows["true_add"]["deltas"] == pytest.approx([-0.8])  # against ntp, not ntp_easy
    assert rows["random_add"]["deltas"] == pytest.approx([0.1])  # same method, its own row
    assert rows["true_add_easy"]["deltas"] == pytest.approx([0.05])  # against ntp_easy
    assert "| true_add | 20 | cocomix/add | - | 1 | 4.2000 | 5.0000 | -0.8000 |" in text


def test_two_ntp_runs_for_one_seed_are_refused(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    root = tmp_path / "runs" / "study" / "x"
    runs = [fake_run(root / arm / "seed0", [5.0, 4.9], config_extra={"steps": 20}) for arm in ("a", "b")]
    runs.append(fake_run(root / "kd" / "seed0", [5.0, 4.8],
                         config_extra={"steps": 20, "objective": {"name": "kd"}}))
    with pytest.raises(CocomixError, match="two ntp runs share seed 0"):
        paired_vs_ntp(runs, tmp_path / "out")


def test_two_reference_runs_for_one_pairing_are_refused(
    study: tuple[Path, list[Path]], tmp_path: Path, fake_run: Callable[..., Path]
) -> None:
    root, runs = study
    twin = fake_run(root / "ntp_20_again" / "seed0", [6.5, 6.3], config_extra={"steps": 20})
    with pytest.raises(CocomixError, match=r"two ntp runs share seed 0, steps=20 and data .*; keep one per seed$"):
        teacher_strength([*runs, twin], tmp_path / "out")
    strong = tmp_path / "teachers" / "strong"
    kd_twin = fake_run(root / "kd_strong_20_again" / "seed1", [6.4, 6.3],
                       config_extra={"steps": 20, "objective": {"name": "kd"}}, artifacts={"teacher": str(strong)})
    with pytest.raises(CocomixError, match=r"two kd runs share teacher .*strong, seed 1, steps=20 and data .*; "
                                           r"keep one per seed and teacher$"):
        teacher_strength([*runs, kd_twin], tmp_path / "out")
