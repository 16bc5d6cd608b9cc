"""Two processes on fairseq2's gangs (gloo on CPU) train exactly like one process with the same
global batch: same data order (windows are a pure function of seed and global sample index),
gradients averaged across ranks by DDP or sharded by FSDP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cocomix.runtime.launch import run_recipe

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


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> list[tuple[int, float, float]]:
    # Also builds the tokenizer and shards, so the two ranks below only read them.
    runs = tmp_path_factory.mktemp("one")
    [run] = run_recipe("pretrain/ntp", SMALL + [f"train.micro_batch_size={GLOBAL_BATCH}"], runs)
    return losses(run.path)


@pytest.mark.slow
@pytest.mark.parametrize("data_parallel", ["ddp", "fsdp"])
def test_two_ranks_match_one(one_process: list[tuple[int, float, float]], data_parallel: str,
                             tmp_path: Path, artifact_cache: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-port", str(29500 + os.getpid() % 1000 + (data_parallel == "fsdp")),
        "-m", "recipes.run", "pretrain/ntp", *SMALL,
        f"train.micro_batch_size={GLOBAL_BATCH // 2}", f"train.data_parallel={data_parallel}",
        "--runs-dir", str(tmp_path),
    ]
    env = {**os.environ, "COCOMIX_ARTIFACTS": str(artifact_cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "pretrain" / "ntp" / "main" / "seed22"
    logs = sorted(p.name for p in (run / "logs").glob("rank_*.log"))
    assert logs == ["rank_0.log", "rank_1.log"], logs  # really two ranks
    two = losses(run)
    assert [s for s, _, _ in two] == [s for s, _, _ in one_process] == [1, 2, 3, 4]
    for (step, loss1, norm1), (_, loss2, norm2) in zip(one_process, two):
        assert loss2 == pytest.approx(loss1, rel=1e-5, abs=1e-5), step
        assert norm2 == pytest.approx(norm1, rel=1e-4, abs=1e-5), step
    assert one_process[-1][1] < one_process[0][1]  # it trained
