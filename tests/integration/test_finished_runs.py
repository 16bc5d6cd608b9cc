"""A finished run is left as it is: a read-only one is "nothing to do" (issue 26: it was refused
because the lock file could not be written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocomix.experiment import run_recipe

TINY = ["model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
        "model.insert_layer=1", "train.seq_len=32", "train.micro_batch_size=4", "train.warmup_steps=1",
        "valid.max_batches=1", "steps=2", "log_every=1", "checkpoint_every=2", "validate_every=2",
        "summary_test_tokens=0"]


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_a_read_only_finished_run_is_nothing_to_do(
    tmp_path: Path, artifact_cache: Path, spm_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    overrides = [*TINY, f"tokenizer.model_file={spm_path}"]
    (run,) = run_recipe("pretrain/ntp", overrides, tmp_path)
    before = _snapshot(run.path)
    capsys.readouterr()
    # Tests run as root, which may write anywhere: the folder is made read-only for the code's
    # own check, and the lock must not be touched at all.
    import cocomix.experiment.execute as execute

    monkeypatch.setattr(execute.os, "access", lambda path, mode: False)

    def no_lock(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a finished read-only run must not be locked")

    monkeypatch.setattr(execute, "RunLock", no_lock)
    (again,) = run_recipe("pretrain/ntp", overrides, tmp_path)
    assert again.path == run.path
    assert "[main/seed22] already at step 2; nothing to do" in capsys.readouterr().out
    assert _snapshot(run.path) == before


def test_the_thread_count_comes_from_the_recipe_not_the_environment(tmp_path: Path, spm_path: Path) -> None:
    """Issue 26: OMP_NUM_THREADS (or the machine's cores) used to decide the count, and with it
    the last bits of every number; `threads=` decides it now, and the run records it."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "COCOMIX_ARTIFACTS": str(tmp_path / "artifacts")}
    args = [*TINY, f"tokenizer.model_file={spm_path}", "threads=2", "--runs-dir", str(tmp_path)]
    done = subprocess.run([sys.executable, "-m", "recipes.run", "pretrain/ntp", *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "pretrain" / "ntp" / "main" / "seed22"
    assert json.loads((run / "env.json").read_text())["torch_threads"] == 2
