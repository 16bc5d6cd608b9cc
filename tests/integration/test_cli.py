"""The command line as a user meets it: listing, dry runs, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipes.run", *args], capture_output=True, text=True, cwd=cwd
    )


def test_list_shows_recipes_and_registries() -> None:
    out = run_cli("--list")
    assert out.returncode == 0, out.stderr
    assert "pretrain/ntp" in out.stdout
    for key in ("model", "data", "tokenizer", "objective", "mixer", "concepts", "teacher.source",
                "sae.source", "model.concept_head"):
        assert f"  {key} " in out.stdout
    assert "gpt2_386m_ntp" in out.stdout and "pd_english" in out.stdout


def test_dry_run_prints_config_and_parameters() -> None:
    out = run_cli("pretrain/ntp", "--dry-run", "steps=30")
    assert out.returncode == 0, out.stderr
    assert "steps: 30" in out.stdout
    assert "parameters: total=" in out.stdout and " active=" in out.stdout


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    out = run_cli("pretrain/ntp", "objective=nope", "--runs-dir", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("error: unknown objective 'nope'; known:")
    assert "Traceback" not in out.stderr
    missing = run_cli("no/such_recipe")
    assert missing.returncode == 2 and "unknown recipe" in missing.stderr


def test_a_second_launch_into_a_running_folder_fails_at_once_and_leaves_the_first_whole(
    tmp_path: Path, artifact_cache: Path
) -> None:
    import json
    import os
    import time

    from test_concepts_training import SMALL_LM

    small = [o for o in SMALL_LM if not o.startswith(("checkpoint_every", "validate_every"))]
    args = ["pretrain/ntp", "--runs-dir", str(tmp_path / "runs"), *small, "steps=4",
            "checkpoint_every=2", "validate_every=2", "summary_test_tokens=0", "plugins=[pause_plugin]"]
    flag = tmp_path / "go"
    env = {**os.environ, "COCOMIX_ARTIFACTS": str(artifact_cache), "COCOMIX_TEST_PAUSE_UNTIL": str(flag),
           "PYTHONPATH": str(Path(__file__).parent)}
    first = subprocess.Popen([sys.executable, "-m", "recipes.run", *args, "train.lr=2e-3"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not Path(f"{flag}.started").exists():  # the first run is inside its first step
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
        time.sleep(0.1)
    second = subprocess.run([sys.executable, "-m", "recipes.run", *args, "train.lr=1e-3"], cwd=REPO,
                            env=env, capture_output=True, text=True)
    flag.touch()
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    run = tmp_path / "runs" / "pretrain" / "ntp" / "main" / "seed22"
    assert second.returncode == 2
    assert second.stderr.startswith(f"error: {run} is in use by pid {first.pid} (")
    assert second.stderr.strip().count("\n") == 0 and "Traceback" not in second.stderr
    assert "lr: 0.002" in (run / "config.yaml").read_text()  # the first run's config, untouched
    steps = [json.loads(line)["Step"] for line in (run / "metrics" / "valid.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # one run's metrics, not two interleaved
    # ... and bit for bit the run a clean launch of the first command makes.
    clean_args = [a if a != str(tmp_path / "runs") else str(tmp_path / "clean") for a in args]
    env.pop("COCOMIX_TEST_PAUSE_UNTIL")
    subprocess.run([sys.executable, "-m", "recipes.run", *clean_args, "train.lr=2e-3"], cwd=REPO,
                   env=env, capture_output=True, check=True)
    clean = tmp_path / "clean" / "pretrain" / "ntp" / "main" / "seed22"
    losses = [[json.loads(line)["Loss"] for line in (folder / "metrics" / "valid.jsonl").read_text().splitlines()]
              for folder in (run, clean)]
    assert losses[0] == losses[1]
    weights = [torch.load(next((folder / "checkpoints" / "step_4" / "model").rglob("*.pt")),
                          map_location="cpu", weights_only=False) for folder in (run, clean)]
    assert_same_tensors(weights[0], weights[1])


def assert_same_tensors(a: object, b: object) -> None:
    """Equal nested containers whose tensors are equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tensors(x, y)


def test_ctrl_c_prints_where_the_run_stopped_and_how_to_resume(tmp_path: Path, artifact_cache: Path) -> None:
    import os
    import signal
    import time

    from test_concepts_training import SMALL_LM

    small = [o for o in SMALL_LM if not o.startswith(("checkpoint_every", "validate_every"))]
    args = ["pretrain/ntp", "--runs-dir", str(tmp_path / "runs"), *small, "steps=6",
            "checkpoint_every=2", "validate_every=2", "summary_test_tokens=0", "plugins=[pause_plugin]"]
    flag = tmp_path / "never"
    env = {**os.environ, "COCOMIX_ARTIFACTS": str(artifact_cache), "COCOMIX_TEST_PAUSE_UNTIL": str(flag),
           "COCOMIX_TEST_PAUSE_AT": "4", "PYTHONPATH": str(Path(__file__).parent)}
    run = subprocess.Popen([sys.executable, "-m", "recipes.run", *args], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not Path(f"{flag}.started").exists():  # paused inside step 4, after step 2's checkpoint
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(2)  # let fairseq2 finish writing step 2's checkpoint in the background
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    folder = tmp_path / "runs" / "pretrain" / "ntp" / "main" / "seed22"
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {folder} stopped (its last checkpoint is step 2); resume with: "
                           f"python -m recipes.run pretrain/ntp --runs-dir "), last


def test_the_console_shows_progress_and_validation_and_nothing_of_fairseq2(
    tmp_path: Path, artifact_cache: Path
) -> None:
    import os

    from test_concepts_training import SMALL_LM

    from cocomix.runtime.artifacts import prepare_data
    from cocomix.runtime.builtins import load_builtins
    from cocomix.runtime.compose import compose_recipe

    # Tokenizer and shards built here first (under xdist this worker's cache may be cold), so
    # the launch below prints its run's lines only.
    load_builtins()
    prepare_data(compose_recipe("pretrain/ntp", SMALL_LM), artifact_cache)
    env = {**os.environ, "COCOMIX_ARTIFACTS": str(artifact_cache)}
    args = ["pretrain/ntp", "--runs-dir", str(tmp_path), *SMALL_LM, "steps=6", "summary_test_tokens=0"]
    out = subprocess.run([sys.executable, "-m", "recipes.run", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = (out.stdout + out.stderr).splitlines()
    assert all(line.startswith("[main/seed22] ") for line in lines), lines
    assert lines[0].startswith("[main/seed22] training 6 steps, ") and "M parameters" in lines[0]
    assert any(line.startswith("[main/seed22] step 6: valid loss ") for line in lines)
    assert out.stdout.splitlines()[-1].startswith("[main/seed22] done in ")
    assert [line.split()[2] for line in lines if "/6 " in line + " "] == ["2/6", "4/6", "6/6"]
    # Everything fairseq2 said is in the run's log file, with our metrics as numbers.
    log = (tmp_path / "pretrain" / "ntp" / "main" / "seed22" / "logs" / "rank_0.log").read_text()
    assert "Train Metrics (step 6)" in log and "tensor(" not in log
    verbose = subprocess.run([sys.executable, "-m", "recipes.run", *args, "steps=8", "--verbose",
                              "--runs-dir", str(tmp_path / "verbose")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert "Train Metrics (step 8)" in verbose.stderr
