"""The concept pipeline end to end, small: teacher recipe -> SAE -> cached attribution labels ->
the three arms of ablation/add_vs_mix -> summary; plus the SAE recipe and a dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cocomix.experiment import dry_run, run_recipe

SMALL_LM = [
    "model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
    "model.insert_layer=1", "train.seq_len=64", "train.micro_batch_size=8", "train.lr=1e-2",
    "train.warmup_steps=2", "tokenizer.vocab_size=2000", "valid.max_batches=4", "log_every=2",
    "checkpoint_every=6", "validate_every=6",
]
TEACHER = "teacher.overrides=[" + ",".join(f"'{o}'" for o in SMALL_LM + ["steps=12"]) + "]"
CONCEPTS = [
    TEACHER, "teacher.layer=0", "sae.n_latents=128", "sae.k=8", "sae.steps=60",
    "sae.batch_tokens=512", "sae.seq_len=64", "model.concept_topk=8", "concepts.k_attr=2",
]


@pytest.fixture(scope="module")
def ablation(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    run_recipe("ablation/add_vs_mix", SMALL_LM + CONCEPTS + ["steps=6", "seeds=[0]", "summary_test_tokens=2000"], runs)
    return runs


def test_every_arm_ran_and_the_summary_lists_them(ablation: Path) -> None:
    root = ablation / "ablation" / "add_vs_mix"
    for arm in ("ntp", "add", "interleave"):
        run = root / arm / "seed0"
        assert list((run / "tb").glob("events.out.tfevents.*")), arm
        assert (run / "metrics" / "valid.jsonl").is_file(), arm
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["arms"]) == {"ntp", "add", "interleave"}
    for arm in summary["arms"].values():
        assert arm["valid_ppl_mean"] > 1 and arm["tokens"] == 6 * 8 * 64
    assert "| interleave |" in (root / "summary.md").read_text()


def test_concept_arms_log_concept_loss_and_accuracy(ablation: Path) -> None:
    for arm in ("add", "interleave"):
        run = ablation / "ablation" / "add_vs_mix" / arm / "seed0"
        lam = yaml.safe_load((run / "config.yaml").read_text())["objective"]["lam"]
        assert lam == 1.0  # the recipe's weight of the concept loss
        last = json.loads((run / "metrics" / "train.jsonl").read_text().splitlines()[-1])
        assert last["loss_concept"] > 0 and 0 <= last["concept_acc"] <= 1
        assert last["Loss"] == pytest.approx(last["loss_lm"] + lam * last["loss_concept"], rel=1e-4)


def test_labels_were_computed_once_and_shared_by_the_concept_arms(artifact_cache: Path, ablation: Path) -> None:
    root = ablation / "ablation" / "add_vs_mix"
    folders = {json.loads((root / arm / "seed0" / "artifacts.json").read_text())["label_cache"]
               for arm in ("add", "interleave")}
    assert len(folders) == 1  # add and interleave (same seed, same windows) share one cache
    (folder,) = folders
    assert Path(folder).parent == artifact_cache / "labels"
    assert len(list(Path(folder).glob("chunk-*.npy"))) == 6  # one chunk per micro-batch


def test_sae_recipe_reports_variance_explained(tmp_path: Path, artifact_cache: Path) -> None:
    sae_overrides = [o for o in CONCEPTS if not o.startswith(("concepts.", "model.concept"))]
    [run] = run_recipe("sae/train", SMALL_LM + sae_overrides + ["steps=6"], tmp_path)
    report = json.loads((run.path / "sae_report.json").read_text())
    assert report["valid"]["fve"] > 0.5  # far better than the mean baseline (fve 0)
    assert report["torch_threads"] >= 1  # the SAE's bits depend on it (reliability.md)


def test_paper_scale_dry_run_counts_cocomix_parameters() -> None:
    text = dry_run("pretrain/cocomix", ["preset=paper", "tokenizer.vocab_size=50257"])
    line = text.splitlines()[-1]
    total, active = (int(part.split("=")[1]) for part in line.split()[1:])
    assert abs(total - 85.1e6) < 0.1e6 and abs(active - 68.3e6) < 0.1e6  # paper brief §3


def test_teacher_and_sae_stay_out_of_student_checkpoints(ablation: Path) -> None:
    import torch

    from cocomix.runtime.checkpoint import load_trained_lm

    run = ablation / "ablation" / "add_vs_mix" / "interleave" / "seed0"
    files = list((run / "checkpoints").glob("step_*/model/**/*.pt"))
    state = torch.load(files[0], map_location="cpu", weights_only=True)
    model = load_trained_lm(run)
    assert set(state) == set(model.state_dict())  # the student only: no teacher, no SAE
    assert any(key.startswith("concept_head.") for key in state)


def test_summary_states_costs_and_held_out_perplexity(ablation: Path) -> None:
    arms = json.loads((ablation / "ablation" / "add_vs_mix" / "summary.json").read_text())["arms"]
    ntp, interleave = arms["ntp"], arms["interleave"]
    assert interleave["params_total"] > interleave["params_active"]  # inactive compressor columns
    assert ntp["params_total"] == ntp["params_active"]
    assert interleave["flops_per_token"] > ntp["flops_per_token"]  # doubled upper blocks + teacher
    assert interleave["train_flops"] == pytest.approx(interleave["flops_per_token"] * interleave["tokens"])
    assert all(arm["test_ppl_mean"] > 1 for arm in arms.values())


@pytest.mark.parametrize("arm", ["interleave", "add"])
def test_concept_runs_export_with_their_modeling_code(ablation: Path, tmp_path: Path, arm: str) -> None:
    """The exported CoCoMix student (trust_remote_code) computes what the run's model does:
    logits and concept logits, KV-cached greedy decoding, steering, and left-padded batches."""
    import torch
    import transformers

    from cocomix.analysis.steering import steering
    from cocomix.eval.loading import load_run
    from cocomix.models import generate
    from tools.export_hf import main

    run_dir = ablation / "ablation" / "add_vs_mix" / arm / "seed0"
    out = tmp_path / f"cocomix_{arm}"
    assert main([str(run_dir), str(out)]) == 0
    assert {"modeling_cocomix.py", "configuration_cocomix.py", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    model = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    ours = load_run(run_dir)
    tokens = torch.tensor([ours.tokenizer.encode("It was the best of times, it was the worst of times, "
                                                 "it was the age of wisdom, it was the age of foolishness")])
    with torch.no_grad():
        theirs, mine = model(tokens), ours.model.forward_lm(tokens)
        assert (theirs.logits - mine.logits).abs().max() <= 1e-4
        assert (theirs.concept_logits - mine.concept_logits).abs().max() <= 1e-4
        # Left padding (generate's batches) leaves the real tokens' logits as they were.
        padded = torch.cat([torch.full((1, 3), ours.tokenizer.eos_id), tokens], dim=1)
        mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones_like(tokens)], dim=1)
        assert (model(padded, attention_mask=mask).logits[:, 3:] - mine.logits).abs().max() <= 1e-4
    prompt = tokens[:, :6]
    cached = model.generate(prompt, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(prompt))
    assert torch.equal(cached, generate(ours.model, prompt, 16, greedy=True))
    concept = int(mine.concept_logits[0, -1].argmin())  # a concept the run does not predict here
    model.set_concept_scale(concept, -40.0)
    with steering(ours.model, concept, -40.0):
        steered = generate(ours.model, prompt, 16, greedy=True)
    assert torch.equal(model.generate(prompt, max_new_tokens=16, do_sample=False,
                                      attention_mask=torch.ones_like(prompt)), steered)
    if arm == "interleave":  # lm-eval's own hf model on the export scores as our adapter does
        import lm_eval.models.huggingface
        from lm_eval.api.instance import Instance

        from cocomix.eval.lm_eval_adapter import CocomixEvalLM

        pairs = [("It was the best of", " times"), ("", "Call me Ishmael."), ("The age of", " wisdom")]
        requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
        hf = lm_eval.models.huggingface.HFLM(pretrained=str(out), device="cpu", batch_size=2,
                                             trust_remote_code=True)
        theirs = hf.loglikelihood(requests, disable_tqdm=True)
        mine = CocomixEvalLM(str(run_dir), batch_size=2).loglikelihood(requests, disable_tqdm=True)
        assert [greedy for _, greedy in theirs] == [greedy for _, greedy in mine]
        assert [ll for ll, _ in theirs] == pytest.approx([ll for ll, _ in mine], abs=1e-3)
