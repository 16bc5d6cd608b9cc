"""Two processes on fairseq2's gangs (gloo on CPU) train exactly like one process with the same
global batch: same data order (windows are a pure function of seed and global sample index),
gradients averaged across ranks by DDP or sharded by FSDP.

NTP runs under DDP and FSDP; CoCoMix runs under FSDP with `concepts=cached`, each rank extracting
the labels of its own micro-batches through the teacher and writing them into one shared cache
(the 1-process NTP run serves as the teacher, so no teacher is trained here). The FSDP runs stop
at step 2 and resume from their sharded checkpoint, and that checkpoint (one shard per rank) loads
as one model and evaluates.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cocomix.experiment import run_recipe

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
    "model.insert_layer=1", "train.seq_len=32", "tokenizer.vocab_size=2000", "valid.max_batches=2",
    "log_every=1", "steps=4", "train.warmup_steps=1", "checkpoint_every=4", "validate_every=4",
    "train.lr=1e-2",
]
GLOBAL_BATCH = 8


def losses(run: Path) -> list[tuple[int, float, float]]:
    rows = [json.loads(line) for line in (run / "metrics" / "train.jsonl").read_text().splitlines()]
    return [(int(r["Step"]), float(r["Loss"]), float(r["Gradient Norm"])) for r in rows]


def concept_overrides(teacher: Path) -> list[str]:
    return ["teacher.source=checkpoint", f"teacher.path={teacher}", "teacher.layer=0",
            "sae.n_latents=128", "sae.k=8", "sae.steps=20", "sae.batch_tokens=256", "sae.seq_len=32",
            "model.concept_topk=8", "concepts=cached", "concepts.k_attr=2", "summary_test_tokens=0"]


@pytest.fixture(scope="module")
def ntp_one(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    # Also builds the tokenizer and shards, so the two ranks below only read them.
    runs = tmp_path_factory.mktemp("one")
    [run] = run_recipe("pretrain/ntp", SMALL + [f"train.micro_batch_size={GLOBAL_BATCH}"], runs)
    return run.path


def two_ranks(recipe: str, overrides: list[str], runs: Path, cache: Path, *, resume_at: int | None = None) -> Path:
    """A 2-rank torchrun launch; with ``resume_at``, one that stops there and a second that
    resumes from its checkpoint to the end."""
    if resume_at is not None:
        two_ranks(recipe, [*overrides, f"stop_at={resume_at}", f"checkpoint_every={resume_at}"], runs, cache)
        overrides = [*overrides, f"checkpoint_every={resume_at}"]
    launch_two_ranks(recipe, overrides, runs, cache)
    run = runs / recipe / "main" / "seed22"
    logs = sorted(p.name for p in (run / "logs").glob("rank_*.log"))
    assert logs == ["rank_0.log", "rank_1.log"], logs  # really two ranks
    if resume_at is not None:  # the second launch continued, it did not start over
        assert f"from the last checkpoint at step {resume_at}." in (run / "logs" / "rank_0.log").read_text()
    return run


def launch_two_ranks(recipe: str, overrides: list[str], runs: Path, cache: Path) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node 2 -m recipes.run ...`, which must succeed; both ranks' output."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", str(29500 + os.getpid() % 1000 + len(overrides) % 7),
        "-m", "recipes.run", recipe, *overrides, f"train.micro_batch_size={GLOBAL_BATCH // 2}",
        "--runs-dir", str(runs),
    ]
    return torchrun(command, {**os.environ, "COCOMIX_ARTIFACTS": str(cache), "OMP_NUM_THREADS": "1"})


def torchrun(command: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a torchrun command line in its own process group, which must succeed; a launch that
    hangs past ``timeout`` fails the test with its output, and its ranks are killed with it
    (killing torchrun alone would leave them running)."""
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun still running after {timeout}s:\n{stdout[-3000:]}{stderr[-3000:]}")
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def assert_same_curve(one: Path, two: Path) -> None:
    a, b = losses(one), losses(two)
    assert [s for s, _, _ in a] == [s for s, _, _ in b] == [1, 2, 3, 4]
    for (step, loss1, norm1), (_, loss2, norm2) in zip(a, b):
        assert loss2 == pytest.approx(loss1, rel=1e-5, abs=1e-5), step
        assert norm2 == pytest.approx(norm1, rel=1e-4, abs=1e-5), step
    assert a[-1][1] < a[0][1]  # it trained


def assert_fsdp_checkpoint_evaluates_as_one(one: Path, two: Path) -> None:
    """An FSDP checkpoint (one shard per rank) loads as one model, the 1-process run's weights,
    and evaluates."""
    from cocomix.eval import evaluate_loaded, load_run
    from cocomix.runtime.checkpoint import load_trained_lm

    assert len(list((two / "checkpoints" / "step_4" / "model").rglob("sdp_*.pt"))) == 2
    merged, single = load_trained_lm(two).state_dict(), load_trained_lm(one).state_dict()
    for key, value in single.items():
        torch.testing.assert_close(merged[key], value, rtol=1e-4, atol=1e-4, msg=key)
    result = evaluate_loaded(load_run(two), tasks=["ppl"], max_tokens=256)
    assert math.isfinite(result["ppl"]["pd_english/all"]["nll"])


@pytest.mark.slow
def test_ntp_two_ranks_ddp_match_one(ntp_one: Path, tmp_path: Path, artifact_cache: Path) -> None:
    two = two_ranks("pretrain/ntp", SMALL + ["train.data_parallel=ddp"], tmp_path, artifact_cache)
    assert_same_curve(ntp_one, two)


@pytest.mark.slow
def test_three_seed_recipe_under_two_ranks_runs_through_and_summarizes_once(
    ntp_one: Path, tmp_path: Path, artifact_cache: Path
) -> None:
    """One torchrun launch trains three runs in turn: each run's process group is created anew
    and must not meet the last one's rendezvous keys in torchrun's store (before
    `name_next_process_groups`, 2 of 4 such launches hung at the second run). The summary, which
    reads the finished folders and writes beside them, is rank 0's work alone."""
    done = launch_two_ranks("pretrain/ntp", SMALL + ["train.data_parallel=ddp", "seeds=[22,23,24]",
                                                     "summary_test_tokens=0"], tmp_path, artifact_cache)
    assert sorted(p.name for p in (tmp_path / "pretrain/ntp/main").iterdir()) == ["seed22", "seed23", "seed24"]
    assert done.stdout.count("| arm | seeds | valid loss |") == 1, done.stdout[-3000:]
    summary = json.loads((tmp_path / "pretrain/ntp/summary.json").read_text())
    assert [run["seed"] for run in summary["runs"]] == [22, 23, 24]


@pytest.mark.slow
def test_ntp_two_ranks_fsdp_stop_resume_and_evaluate(ntp_one: Path, tmp_path: Path, artifact_cache: Path) -> None:
    two = two_ranks("pretrain/ntp", SMALL + ["train.data_parallel=fsdp"], tmp_path, artifact_cache, resume_at=2)
    assert_same_curve(ntp_one, two)  # stopped at 2, resumed from its sharded checkpoint
    assert_fsdp_checkpoint_evaluates_as_one(ntp_one, two)


@pytest.mark.slow
def test_cocomix_cached_two_ranks_fsdp_match_one(ntp_one: Path, tmp_path: Path, artifact_cache: Path) -> None:
    overrides = SMALL + concept_overrides(ntp_one)
    [one] = run_recipe("pretrain/cocomix", overrides + [f"train.micro_batch_size={GLOBAL_BATCH}"],
                       tmp_path / "one")
    labels = tmp_path / "labels"
    two = two_ranks("pretrain/cocomix", overrides + ["train.data_parallel=fsdp", f"concepts.path={labels}"],
                    tmp_path / "two", artifact_cache, resume_at=2)
    assert_same_curve(one.path, two)  # stopped at 2, resumed from its sharded checkpoint
    assert_fsdp_checkpoint_evaluates_as_one(one.path, two)
    # Both ranks wrote their micro-batches' labels into the one cache folder: 4 steps x 2 ranks.
    assert sorted(p.name for p in labels.glob("chunk-*.npy")) == [f"chunk-{i:08d}.npy" for i in range(8)]
    assert json.loads((labels / "meta.json").read_text())["parts"]["micro_batch_size"] == GLOBAL_BATCH // 2
    assert not list(labels.glob(".*"))  # no temporary file left behind


@pytest.mark.slow
def test_multinode_rendezvous_command_line_dry_runs_once(tmp_path: Path) -> None:
    """The torchrun rendezvous form docs/performance.md gives for several nodes, on one node with
    two processes: both ranks plan the teacher and the run, rank 0 alone prints the plan."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{29500 + os.getpid() % 1000 + 11}",
        "--rdzv-id", "cocomix-test", "-m", "recipes.run", "pretrain/cocomix", "--dry-run",
        "train.data_parallel=fsdp", "--runs-dir", str(tmp_path),
    ]
    done = torchrun(command, {**os.environ, "OMP_NUM_THREADS": "1"})
    heads = [line for line in done.stdout.splitlines() if line.startswith("# ")]
    # Once each (rank 0 alone prints): the artifacts in build order, then the run.
    assert [h.split(":")[0] for h in heads] == ["# tokenizer", "# shards", "# teacher", "# sae", "# run"]
    assert heads[2].startswith("# teacher: pretrain/teacher ->") and heads[4] == "# run: pretrain/cocomix/main/seed22"
    assert "data_parallel: fsdp" in done.stdout
    assert not list(tmp_path.iterdir())  # a dry run writes nothing
