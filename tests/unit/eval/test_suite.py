"""``evaluate_run`` on a run folder written in the runtime's layout (no training)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from cocomix.eval import evaluate_run, flatten, format_table
from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


@pytest.fixture
def run_dir(tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path) -> Path:
    model = tiny_lm(mixer="interleave", num_concepts=16, concept_topk=4)
    return save_run_folder(tmp_path / "pretrain" / "cocomix" / "main" / "seed3", model,
                           config={"train": {"seq_len": 32}}, tokenizer=spm_path, step=7)


def test_evaluate_run_reports_every_task(run_dir: Path, tmp_path: Path) -> None:
    mc = tmp_path / "tiny_mc.jsonl"
    mc.write_text(json.dumps({"context": "The sea", "choices": ["is wide.", "is a cat."], "label": 0}) + "\n")
    result = evaluate_run(run_dir, tasks=["ppl", "cloze"], mc_files=[mc], max_tokens=300,
                          cloze_items=12)
    assert (result["arm"], result["seed"], result["step"], result["seq_len"]) == ("main", 3, 7, 32)
    assert result["tasks"] == ["ppl", "cloze", "mc"]
    names = set(result["ppl"])
    assert {"pd_english/sotu", "pd_english/austen", "pd_english/all", "pystdlib"} <= names
    for r in result["ppl"].values():
        # An untrained model is near uniform over the 400-piece vocabulary.
        assert r["tokens"] >= 300 and 100 < r["ppl"] < 2000 and r["bits_per_byte"] > 0
    assert result["cloze"]["n"] == 12 and result["cloze"]["mean_logprob"] < 0
    assert set(result["mc"]["tiny_mc"]) == {"acc", "acc_norm", "acc_bytes", "n"}
    flat = flatten(result)
    assert math.isfinite(flat["ppl/all"]) and "mc/tiny_mc/acc_norm" in flat
    table = format_table([result, result], ["a", "b"])
    assert table.splitlines()[0] == "| metric | a | b |" and "| cloze/acc |" in table


def test_unknown_task_and_missing_mc_file_are_errors(run_dir: Path) -> None:
    with pytest.raises(CocomixError, match="unknown task"):
        evaluate_run(run_dir, tasks=["ppl", "hellaswag"])
    with pytest.raises(CocomixError, match="needs at least one"):
        evaluate_run(run_dir, tasks=["mc"])


def test_run_without_artifacts_needs_a_tokenizer(run_dir: Path, spm_path: Path) -> None:
    (run_dir / "artifacts.json").unlink()
    with pytest.raises(CocomixError, match="pass --tokenizer"):
        evaluate_run(run_dir, tasks=["cloze"], cloze_items=2)
    assert evaluate_run(run_dir, tasks=["cloze"], cloze_items=2, tokenizer=spm_path)["cloze"]["n"] == 2


def test_arm_table_averages_seeds() -> None:
    from cocomix.eval.suite import format_arm_table

    def result(arm: str, seed: int, ppl: float) -> dict:
        return {"arm": arm, "seed": seed, "step": 1, "cloze": {"acc": 0.5, "mean_logprob": -1.0,
                "ppl": math.e, "n": 10}, "ppl": {"pd_english/all": {"ppl": ppl, "bits_per_byte": 2.0}}}

    table = format_arm_table([result("ntp", 0, 10.0), result("ntp", 1, 12.0), result("add", 0, 9.0)])
    assert table.splitlines()[0] == "| metric | ntp (2 seeds) | add (1 seed) |"
    assert "| ppl/all | 11.00 ± 1.41 | 9.00 |" in table and "| cloze/items | 10 | 10 |" in table
