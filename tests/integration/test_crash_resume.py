"""Crash safety and ablation resume: a multi-arm recipe SIGKILLed while its second arm writes a
checkpoint; the same command then finishes it from the last complete checkpoint, without
redoing the finished arm or any artifact (tokenizer, shards, teacher, SAE, label cache)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_concepts_training import CONCEPTS, SMALL_LM
from test_ntp_training import final_weights, train_losses

from cocomix.experiment import run_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPE = "ablation/add_vs_mix"
OVERRIDES = SMALL_LM + CONCEPTS + [
    "steps=4", "log_every=1", "checkpoint_every=2", "validate_every=100", "valid.max_batches=1",
    "seeds=[0]", "summary_test_tokens=0", "plugins=[crash_plugin]",
]
ARMS = ["only_arms=[ntp,add]"]

# Written by every (re)run on purpose: the config (resume-neutral keys may change) and the
# history of invocations. Everything else that exists must stay byte for byte.
REWRITTEN = ("config.yaml", "env_history.jsonl")


def snapshot(*roots: Path) -> dict[Path, tuple[int, int]]:
    return {
        path: (path.stat().st_mtime_ns, path.stat().st_size)
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and path.name not in REWRITTEN
    }


def losses_per_step(run: Path) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for line in (run / "metrics" / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        out.setdefault(int(record["Step"]), []).append(float(record["Loss"]))
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    """The runs folder after `add` was killed while saving its step-4 checkpoint."""
    runs = tmp_path_factory.mktemp("killed")
    env = {
        **os.environ,
        "COCOMIX_ARTIFACTS": str(artifact_cache),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        "COCOMIX_TEST_KILL_SAVE": f"{os.sep}add{os.sep}seed0{os.sep}:4",
    }
    out = subprocess.run(
        [sys.executable, "-m", "recipes.run", RECIPE, *OVERRIDES, *ARMS, "--runs-dir", str(runs)],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
    return runs


def test_kill_during_save_leaves_only_complete_checkpoints(killed: Path) -> None:
    root = killed / RECIPE
    assert sorted(p.name for p in (root / "ntp" / "seed0" / "checkpoints").glob("step_*")) == [
        "step_2", "step_4"]
    add = root / "add" / "seed0" / "checkpoints"
    assert sorted(p.name for p in add.glob("step_*")) == ["step_2", "step_4.tmp"]
    assert any((add / "step_4.tmp").rglob("*.pt"))  # the kill really was mid-save


def test_rerun_resumes_killed_arm_and_redoes_nothing(
    killed: Path, artifact_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recipes.run import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delenv("COCOMIX_TEST_KILL_SAVE", raising=False)
    root = killed / RECIPE
    add = root / "add" / "seed0"
    before = snapshot(artifact_cache, root / "ntp", add / "checkpoints" / "step_2")
    assert any("teachers" in p.parts for p in before) and any(p.name == "sae.pt" for p in before)
    assert any(p.name.startswith("chunk-") for p in before)
    logged_before_kill = losses_per_step(add)

    assert main([RECIPE, *OVERRIDES, *ARMS, "--runs-dir", str(killed)]) == 0
    out = capsys.readouterr().out
    assert "[ntp/seed0] already at step 4; nothing to do" in out
    assert "[add/seed0] resuming from step 2" in out
    after = snapshot(artifact_cache, root / "ntp", add / "checkpoints" / "step_2")
    changed = [str(p) for p in before if after.get(p) != before[p]]
    assert not changed, changed
    assert sorted(p.name for p in (add / "checkpoints").glob("step_*")) == ["step_2", "step_4"]

    # Steps logged twice (before the kill and after the resume) logged the same loss, and the
    # resumed arm ends bit-identical to the same arm run straight.
    for step, values in losses_per_step(add).items():
        assert len(set(values)) == 1, (step, values)
    assert set(logged_before_kill) <= set(losses_per_step(add))
    [straight] = run_recipe(RECIPE, OVERRIDES + ["only_arms=[add]"], tmp_path)
    assert train_losses(straight.path) == train_losses(add)
    a, b = final_weights(straight.path), final_weights(add)
    for key in a:
        assert torch.equal(a[key], b[key]), key
