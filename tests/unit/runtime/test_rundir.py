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
