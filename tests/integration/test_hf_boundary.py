"""Bring your own teacher and SAE, end to end and offline: a random Llama-architecture teacher
saved with its tokenizer, a SAELens TopK SAE on its block-1 residual (both written by their own
libraries, tests/conftest.py), and a student that tokenizes with the teacher's tokenizer
(``tokenizer=hf``). It trains, resumes, evaluates and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cocomix.experiment import dry_run, run_recipe
from cocomix.registry import CocomixError

SMALL = [
    "model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=128",
    "model.insert_layer=1", "train.seq_len=32", "train.micro_batch_size=4", "train.warmup_steps=1",
    "valid.batch_size=4", "valid.max_batches=2", "log_every=1", "checkpoint_every=2", "validate_every=2",
    "summary_test_tokens=0", "steps=4",
]


def bring_your_own(files: dict[str, Path]) -> list[str]:
    return [
        "teacher.source=hf", f"teacher.path={files['llama']}", "teacher.layer=1",
        "sae.source=saelens", f"sae.path={files['sae']}", "sae.n_latents=128", "sae.k=8",
        "tokenizer=hf", f"tokenizer.path={files['llama']}", "model.concept_topk=8", "concepts.k_attr=2",
    ]


@pytest.fixture(scope="module")
def trained(hf_stand_ins: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    overrides = SMALL + bring_your_own(hf_stand_ins)
    run_recipe("pretrain/cocomix", [*overrides, "stop_at=2"], runs)  # stopped with a checkpoint ...
    run_recipe("pretrain/cocomix", overrides, runs)  # ... and resumed by the same command
    return runs / "pretrain" / "cocomix" / "main" / "seed22"


def test_dry_run_shows_the_teacher_and_sae_from_their_configs(hf_stand_ins: dict[str, Path]) -> None:
    text = dry_run("pretrain/cocomix", SMALL + bring_your_own(hf_stand_ins))
    assert f"# teacher: hf {hf_stand_ins['llama']} (llama, 4 blocks, width 32, vocab 400, float32)" in text
    assert f"# sae: SAELens topk SAE read from {hf_stand_ins['sae']} (128 latents, blocks.1.hook_resid_post)" in text


def test_it_trains_resumes_and_labels_come_from_the_teacher(trained: Path, hf_stand_ins: dict[str, Path]) -> None:
    steps = [json.loads(line)["Step"] for line in (trained / "metrics" / "train.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # resumed at 2, no step twice
    last = json.loads((trained / "metrics" / "train.jsonl").read_text().splitlines()[-1])
    assert last["loss_concept"] > 0 and 0 <= last["concept_acc"] <= 1
    record = json.loads((trained / "artifacts.json").read_text())
    assert record["teacher_source"] == "hf" and record["sae_source"] == "saelens" and record["sae_k"] == 8
    assert record["teacher"] == str(hf_stand_ins["llama"]) and record["tokenizer"] == str(hf_stand_ins["llama"])


def test_it_evaluates_with_the_teachers_tokenizer(trained: Path) -> None:
    from cocomix.data.hf_tokenizer import HFTokenizer
    from cocomix.eval import evaluate_run, load_run

    run = load_run(trained)
    assert isinstance(run.tokenizer, HFTokenizer) and run.tokenizer.vocab_size == 400
    result = evaluate_run(trained, tasks=("ppl",), max_tokens=500)
    assert all(1 < score["ppl"] < 1e4 for score in result["ppl"].values())


def test_concept_inspection_reads_the_saelens_sae_back(trained: Path) -> None:
    from cocomix.analysis.concept_inspection import load_concept_artifacts
    from cocomix.eval import load_run
    from cocomix.runtime.saelens import SAELensDictionary

    teacher, sae, layer = load_concept_artifacts(load_run(trained).artifacts, trained)
    assert isinstance(sae, SAELensDictionary) and (sae.n_latents, sae.k, layer) == (128, 8, 1)
    assert teacher.model_dim == 32


def test_it_exports_with_the_teachers_tokenizer(trained: Path, tmp_path: Path, hf_stand_ins: dict[str, Path]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cocomix.export.hf import export_run

    export_run(trained, tmp_path / "out")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out", trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    teacher_tokenizer = AutoTokenizer.from_pretrained(hf_stand_ins["llama"])
    text = "In 1861 the war began."
    ids = tokenizer(text)["input_ids"]  # the call people make: no BOS the student never saw
    assert ids == teacher_tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        assert model(torch.tensor([ids])).logits.shape == (1, len(ids), 400)


def test_a_student_tokenizer_that_is_not_the_teachers_is_refused(hf_stand_ins: dict[str, Path], tmp_path: Path,
                                                                 artifact_cache: Path) -> None:
    overrides = [o for o in SMALL + bring_your_own(hf_stand_ins) if not o.startswith("tokenizer")]
    with pytest.raises(CocomixError, match="is not the teacher's .*set tokenizer=hf tokenizer.path="):
        run_recipe("pretrain/cocomix", [*overrides, "tokenizer.vocab_size=400"], tmp_path)
    with pytest.raises(CocomixError, match="teacher.layer=7 is outside .* \\(4 blocks\\): choose 0..3"):
        dry_run("pretrain/cocomix", [*SMALL, *bring_your_own(hf_stand_ins), "teacher.layer=7"])


def test_a_foreign_tokenizer_is_refused_by_the_dry_run(hf_stand_ins: dict[str, Path], spm_path: Path) -> None:
    """A tokenizer that is built without training (a model file, GPT-2's files, an HF folder) is
    checked against the teacher's before anything is built; one trained on the corpus is checked
    when the teacher is loaded (the test above)."""
    overrides = [o for o in SMALL + bring_your_own(hf_stand_ins) if not o.startswith("tokenizer")]
    with pytest.raises(CocomixError, match="has 50257 tokens, more than the teacher .* \\(400\\); set tokenizer=hf"):
        dry_run("pretrain/cocomix", [*overrides, "tokenizer=gpt2_bpe"])
    # The stand-in's tokenizer is this SentencePiece model converted (tests/conftest.py): the
    # same ids through another implementation pass, as gpt2_bpe does for GPT-2.
    assert "# teacher: hf " in dry_run("pretrain/cocomix", [*overrides, f"tokenizer.model_file={spm_path}"])
