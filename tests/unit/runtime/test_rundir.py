"""A run folder is trusted only whole: its config guards its checkpoints, and an attempt that
saved no checkpoint never blocks the corrected command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cocomix.registry import CocomixError
from cocomix.runtime.rundir import RunDir


def run_dir(tmp_path: Path) -> RunDir:
    return RunDir.of(tmp_path, "pretrain/ntp", "main", 0)


def save_checkpoint(run: RunDir, step: int) -> None:
    (run.checkpoint_dir / f"step_{step}" / "model").mkdir(parents=True)


def test_a_failed_attempt_without_checkpoint_does_not_block_the_corrected_config(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    assert run.prepare({"steps": 4, "train": {"lr": -1.0}}) is False
    assert run.prepare({"steps": 4, "train": {"lr": 1e-3}}) is False
    assert yaml.safe_load(run.config_file.read_text())["train"]["lr"] == 1e-3


def test_a_different_config_is_refused_once_a_checkpoint_exists(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    run.prepare({"steps": 4, "train": {"lr": 2e-3}})
    save_checkpoint(run, 2)
    with pytest.raises(CocomixError, match=r"different config \(train.lr: 0.002 -> 0.001\)"):
        run.prepare({"steps": 4, "train": {"lr": 1e-3}})
    assert run.prepare({"steps": 4, "train": {"lr": 2e-3}}) is True  # the same one resumes


def test_a_key_added_to_the_schema_later_counts_as_its_default(tmp_path: Path) -> None:
    # Runs made before `concepts.labels` existed (cocomix/concepts/cached.py) trained each window
    # on its own labels, the option's default: they resume, and only another value is refused.
    run = run_dir(tmp_path)
    old = {"steps": 4, "concepts": {"name": "cached", "source": "attribution"}}
    run.prepare(old)
    save_checkpoint(run, 2)
    now = {"steps": 4, "concepts": {"name": "cached", "source": "attribution", "labels": "true"}}
    with pytest.raises(CocomixError, match=r"different config \(concepts.labels: 'true' -> 'mismatched'\)"):
        run.prepare({**now, "concepts": {**now["concepts"], "labels": "mismatched"}})
    assert run.prepare(now) is True
    assert yaml.safe_load(run.config_file.read_text())["concepts"]["labels"] == "true"


def test_checkpoints_without_a_config_are_refused(tmp_path: Path) -> None:
    run = run_dir(tmp_path)
    run.prepare({"steps": 4})
    save_checkpoint(run, 2)
    run.config_file.unlink()
    with pytest.raises(CocomixError, match="holds checkpoints but no config.yaml.*restore its config.yaml"):
        run.prepare({"steps": 4, "train": {"lr": 1.0}})
    assert not run.config_file.exists()  # nothing written: the folder is as it was


def log_steps(run: RunDir, *steps: int) -> None:
    import json

    (run.path / "metrics").mkdir(exist_ok=True)
    lines = [json.dumps({"Step": step, "Loss": 1.0}) for step in steps]
    (run.path / "metrics" / "valid.jsonl").write_text("\n".join(lines) + "\n")


def test_a_run_that_lost_its_checkpoints_is_refused_not_retrained(tmp_path: Path) -> None:
    """Issue 26: a finished run whose checkpoints/ was deleted retrained from scratch without a
    word and logged every step a second time beside the old ones."""
    run = run_dir(tmp_path)
    config = {"steps": 4, "checkpoint_every": 2}
    run.prepare(config)
    log_steps(run, 2, 4)  # it trained, and checkpointed at step 2 at least
    before = (run.path / "metrics" / "valid.jsonl").read_text()
    with pytest.raises(CocomixError, match="logged training up to step 4 but holds no checkpoint .*restore its "
                                           "checkpoints/, or delete .* to train it again from scratch"):
        run.prepare(config)
    assert (run.path / "metrics" / "valid.jsonl").read_text() == before  # nothing changed


def test_an_attempt_before_its_first_checkpoint_is_set_aside_and_trained_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_dir(tmp_path)
    config = {"steps": 10, "checkpoint_every": 5}
    run.prepare(config)
    log_steps(run, 1, 2, 3)  # e.g. killed at step 3, before the step-5 checkpoint
    assert run.prepare(config) is False
    assert "an earlier attempt logged 3 step(s) but saved no checkpoint; training again" in capsys.readouterr().out
    assert not (run.path / "metrics").exists()  # the new attempt logs into an empty metrics/
    (aside,) = run.path.glob("attempt-*")
    assert (aside / "metrics" / "valid.jsonl").is_file()  # the old lines are kept, apart
