"""A trained run leaves the framework: export to GPT2LMHeadModel, load with plain transformers,
and score with lm-eval's own ``hf`` model (offline, local tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_ntp_training import SMALL

from cocomix.data.corpora import build_corpus
from cocomix.eval.loading import load_run
from cocomix.models import generate
from cocomix.experiment import run_recipe

transformers = pytest.importorskip("transformers")
lm_eval = pytest.importorskip("lm_eval")

# The NTP suite's tiny model, ten steps with one checkpoint at the end.
OVERRIDES = SMALL + ["steps=10", "train.warmup_steps=2", "checkpoint_every=10", "validate_every=10"]


@pytest.fixture(scope="module")
def ntp_run(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    [run] = run_recipe("pretrain/ntp", OVERRIDES, tmp_path_factory.mktemp("export_runs"))
    return run.path


@pytest.fixture(scope="module")
def exported(ntp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.export_hf import main

    out = tmp_path_factory.mktemp("hf") / "ntp"
    assert main([str(ntp_run), str(out)]) == 0
    return out


def held_out_text() -> str:
    return next(d.text for d in build_corpus("pd_english").documents("valid"))[:4000]


def test_export_loads_with_plain_transformers_and_matches_the_run(ntp_run: Path, exported: Path) -> None:
    model = transformers.GPT2LMHeadModel.from_pretrained(exported).eval()
    tok = transformers.AutoTokenizer.from_pretrained(exported)
    ours = load_run(ntp_run)
    text = held_out_text()
    ids = ours.tokenizer.encode(text)
    assert tok(text)["input_ids"] == ids  # the tokenizer: same ids
    window = torch.tensor([ids[: ours.seq_len]])
    with torch.no_grad():
        diff = (model(window).logits - ours.model.forward_lm(window).logits).abs().max().item()
    assert diff <= 1e-4
    # Greedy decoding with HF's KV cache gives our cached decoder's tokens.
    prompt = window[:, :12]
    theirs = model.generate(prompt, max_new_tokens=24, do_sample=False,
                            attention_mask=torch.ones_like(prompt))
    assert torch.equal(theirs, generate(ours.model, prompt, 24, greedy=True))
    # The position table keeps the rows training reached, so lm-eval sizes windows by them.
    assert model.config.n_positions == ours.seq_len == 64
    record = json.loads((exported / "cocomix_export.json").read_text())
    assert record["step"] == 10 and record["architecture"] == "GPT2LMHeadModel"


def _tasks(folder: Path) -> Path:
    mc = [{"context": c, "choices": [a, b], "label": i % 2} for i, (c, a, b) in enumerate([
        ("The whale swam under the", "ship.", "bank vault on Sunday."),
        ("She opened the", "window.", "door."), ("Call me", "Ishmael.", "a taxi, please."),
        ("It was the best of", "times.", "the worst weather."), ("The old man and the", "sea.", "tree."),
    ])]
    text = [{"text": held_out_text()[:1500]}]  # longer than one 64-token window: rolling windows
    (folder / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mc))
    (folder / "text.jsonl").write_text("".join(json.dumps(r) + "\n" for r in text))
    head = "dataset_path: json\ndataset_kwargs:\n  data_files: {data}\n  cache_dir: {cache}\ntest_split: train\n"
    metrics = "metric_list:\n" + "".join(f"  - metric: {m}\n    aggregation: {a}\n    higher_is_better: {h}\n"
                                         for m, a, h in [("acc", "mean", "true"), ("acc_norm", "mean", "true")])
    (folder / "mc.yaml").write_text("task: local_mc\n" + head.format(data=folder / "mc.jsonl", cache=folder / "hf") + (
        "output_type: multiple_choice\ndoc_to_text: '{{context}}'\ndoc_to_choice: '{{choices}}'\n"
        "doc_to_target: '{{label}}'\n" + metrics))
    (folder / "ppl.yaml").write_text("task: local_ppl\n" + head.format(data=folder / "text.jsonl", cache=folder / "hf") + (
        "output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\nmetric_list:\n"
        "  - metric: word_perplexity\n    aggregation: weighted_perplexity\n    higher_is_better: false\n"
        "  - metric: bits_per_byte\n    aggregation: bits_per_byte\n    higher_is_better: false\n"))
    return folder


def test_lm_eval_hf_on_the_export_equals_our_adapter_on_the_run(
    ntp_run: Path, exported: Path, tmp_path: Path
) -> None:
    import lm_eval.models.huggingface  # noqa: F401  (registers lm-eval's own "hf" model)
    from lm_eval.api.instance import Instance
    from lm_eval.tasks import TaskManager

    from cocomix.eval.lm_eval_adapter import CocomixEvalLM, run_lm_eval

    tasks = _tasks(tmp_path)
    ours = run_lm_eval(load_run(ntp_run), ["local_mc", "local_ppl"], include_path=tasks, batch_size=4)
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={exported},dtype=float32", device="cpu", batch_size=4,
        tasks=["local_mc", "local_ppl"], task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        bootstrap_iters=0,
    )["results"]
    for task, metric in [("local_mc", "acc"), ("local_mc", "acc_norm"), ("local_ppl", "bits_per_byte"),
                         ("local_ppl", "word_perplexity")]:
        assert results[task][f"{metric},none"] == pytest.approx(ours[task][metric], rel=1e-3), (task, metric)
    # Request by request, the log-likelihoods themselves agree, empty context included.
    pairs = [("The whale swam under the", " ship."), ("", "Call me Ishmael."), ("She opened", " the door")]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    hf = lm_eval.models.huggingface.HFLM(pretrained=str(exported), device="cpu", batch_size=2)
    theirs = hf.loglikelihood(requests, disable_tqdm=True)
    mine = CocomixEvalLM(str(ntp_run), batch_size=2).loglikelihood(requests, disable_tqdm=True)
    for (a, greedy_a), (b, greedy_b) in zip(theirs, mine, strict=True):
        assert a == pytest.approx(b, abs=1e-3) and greedy_a == greedy_b
