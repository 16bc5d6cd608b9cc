"""A runs folder moved with its `_artifacts` cache still loads; one moved without it says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from cocomix.eval.loading import load_run
from cocomix.runtime.rundir import read_artifacts
from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoLMConfig, create_cocomix_lm
from cocomix.registry import CocomixError


@pytest.fixture
def runs(tmp_path: Path, spm_path: Path) -> Path:
    """`old/runs` with a run whose tokenizer lives in `old/runs/_artifacts`, as recipes.run writes."""
    root = tmp_path / "old" / "runs"
    cached = root / "_artifacts" / "tokenizers" / "sentencepiece-0123" / "spm.model"
    cached.parent.mkdir(parents=True)
    shutil.copy(spm_path, cached)
    torch.manual_seed(0)
    model = create_cocomix_lm(CocoLMConfig(model_dim=16, num_layers=2, num_heads=2, ffn_inner_dim=32,
                                           vocab_size=400, max_seq_len=64, insert_layer=1))
    run = save_run_folder(root / "pretrain" / "ntp" / "main" / "seed0", model,
                          config={"train": {"seq_len": 32}}, tokenizer=spm_path)
    (run / "artifacts.json").write_text(json.dumps({"tokenizer": str(cached)}))
    return root


def test_a_runs_folder_moved_with_its_cache_still_loads(runs: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "runs"
    shutil.move(runs, moved)
    run = moved / "pretrain" / "ntp" / "main" / "seed0"
    assert read_artifacts(run)["tokenizer"] == str(
        moved.resolve() / "_artifacts" / "tokenizers" / "sentencepiece-0123" / "spm.model")
    assert load_run(run).tokenizer.vocab_size > 0


def test_a_runs_folder_moved_without_its_cache_names_the_cause(runs: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.move(runs / "pretrain", moved / "pretrain")
    shutil.rmtree(runs)
    with pytest.raises(CocomixError, match=r"records its tokenizer at .*, which no longer exists "
                                           r"\(a runs folder moved without its _artifacts folder"):
        load_run(moved / "pretrain" / "ntp" / "main" / "seed0")
