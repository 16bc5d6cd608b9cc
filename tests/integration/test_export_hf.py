"""A trained run leaves the framework: export to GPT2LMHeadModel, load with plain transformers,
and score with lm-eval's own ``hf`` model (offline, local tasks). Then the calls a new user makes
on both export kinds (GPT-2 and CoCoMix): ``model(**tokenizer(text))``, ``generate``, the
text-generation pipeline with its defaults, batches, truncation, a save/reload round trip, and
what the folder says about itself (model card, no path of this machine)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
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


# A CoCoMix student whose teacher is the NTP run above (teacher.source=checkpoint): SAE,
# attribution labels and interleaving in seconds, without a teacher recipe of its own.
COCOMIX = SMALL + [
    "steps=4", "train.warmup_steps=2", "checkpoint_every=4", "validate_every=4", "teacher.source=checkpoint",
    "teacher.layer=0", "sae.n_latents=128", "sae.k=8", "sae.steps=20", "sae.batch_tokens=512", "sae.seq_len=64",
    "model.concept_topk=8", "concepts.k_attr=2",
]


@pytest.fixture(scope="module")
def exported(ntp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.export_hf import main

    out = tmp_path_factory.mktemp("hf") / "ntp"
    assert main([str(ntp_run), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def cocomix_run(ntp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    [run] = run_recipe("pretrain/cocomix", COCOMIX + [f"teacher.path={ntp_run}"], tmp_path_factory.mktemp("cc_runs"))
    return run.path


@pytest.fixture(scope="module")
def exported_cocomix(cocomix_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.export_hf import main

    out = tmp_path_factory.mktemp("hf") / "cocomix"
    assert main([str(cocomix_run), str(out)]) == 0
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


# -- the calls people make, on both export kinds ---------------------------------------------------

TEXT = "It was the best of times, it was the worst of times, it was the age of wisdom."
CONTEXT = 64  # train.seq_len of both runs


class Kind:
    """One export kind: the run, its folder, and whether it loads with remote code."""

    def __init__(self, run: Path, folder: Path, remote: bool) -> None:
        self.run, self.folder, self.remote = run, folder, remote

    def load(self):  # noqa: ANN201 (tokenizer, model)
        tok = transformers.AutoTokenizer.from_pretrained(self.folder)
        model = transformers.AutoModelForCausalLM.from_pretrained(self.folder, trust_remote_code=self.remote)
        return tok, model.eval()


@pytest.fixture(params=["gpt2", "cocomix"])
def kind(request: pytest.FixtureRequest) -> Kind:
    if request.param == "gpt2":
        return Kind(request.getfixturevalue("ntp_run"), request.getfixturevalue("exported"), remote=False)
    return Kind(request.getfixturevalue("cocomix_run"), request.getfixturevalue("exported_cocomix"), remote=True)


def test_the_tokenizer_call_feeds_the_model_and_generate(kind: Kind) -> None:
    tok, model = kind.load()
    assert type(model).__name__ == ("CocoMixForCausalLM" if kind.remote else "GPT2LMHeadModel")
    inputs = tok(TEXT, return_tensors="pt")
    assert list(inputs) == ["input_ids", "attention_mask"]  # no token_type_ids for GPT-2 to embed
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(inputs["input_ids"]).logits, rtol=0, atol=1e-6)
    plain = model.generate(inputs["input_ids"], max_new_tokens=8, do_sample=False,
                           attention_mask=torch.ones_like(inputs["input_ids"]))
    assert torch.equal(model.generate(**inputs, max_new_tokens=8, do_sample=False), plain)
    # With no length of its own, generate() stops where prompt + continuation fill the context.
    full = model.generate(**inputs, do_sample=False)
    assert full.shape[1] == CONTEXT or full[0, -1].item() == tok.eos_token_id


def test_the_text_generation_pipeline_runs_with_its_defaults(kind: Kind) -> None:
    transformers.set_seed(0)
    pipe = transformers.pipeline("text-generation", model=str(kind.folder), trust_remote_code=kind.remote)
    assert pipe("The year")[0]["generated_text"].startswith("The year")  # samples 256 tokens without the fix
    ids = pipe("The year", return_tensors=True)[0]["generated_token_ids"]
    assert len(ids) == CONTEXT or ids[-1] == pipe.tokenizer.eos_token_id


def test_a_padded_batch_generates_each_row_as_alone(kind: Kind) -> None:
    tok, model = kind.load()
    texts = [TEXT, "Call me"]
    batch = tok(texts, padding=True, return_tensors="pt")
    assert tok.padding_side == "left" and tok.pad_token_id is not None and batch["attention_mask"][1, 0] == 0
    greedy = {"max_new_tokens": 4, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}
    together = model.generate(**batch, **greedy)
    for row, text in enumerate(texts):
        # Logits, not tokens: a tiny model's greedy tokens are mostly "the" and "," whatever it reads.
        alone = model.generate(**tok(text, return_tensors="pt"), **greedy)
        for step, logits in enumerate(alone.logits):
            torch.testing.assert_close(together.logits[step][row], logits[0], rtol=0, atol=1e-4)


def test_the_context_is_the_tokenizers_and_generations_limit(kind: Kind) -> None:
    tok, model = kind.load()
    assert tok.model_max_length == model.config.n_positions == model.generation_config.max_length == CONTEXT
    assert model.generation_config.max_new_tokens is None  # nothing past the context by default
    assert len(tok("word " * 200, truncation=True)["input_ids"]) == CONTEXT


def test_save_pretrained_then_from_pretrained_gives_the_same_model(kind: Kind, tmp_path: Path) -> None:
    tok, model = kind.load()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = Kind(kind.run, tmp_path, kind.remote)
    tok2, model2 = again.load()
    inputs = tok2(TEXT, return_tensors="pt")
    assert inputs["input_ids"].tolist() == tok(TEXT, return_tensors="pt")["input_ids"].tolist()
    assert (tok2.padding_side, tok2.model_max_length) == ("left", CONTEXT)
    assert model2.generation_config.max_length == CONTEXT
    with torch.no_grad():
        assert torch.equal(model2(**inputs).logits, model(**inputs).logits)


def test_the_export_has_a_model_card_with_the_runs_numbers(kind: Kind) -> None:
    card = (kind.folder / "README.md").read_text()
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert meta["license"] and "cocomix" in meta["tags"]
    assert ("custom_code" in meta["tags"]) == kind.remote
    valid = [json.loads(line) for line in (kind.run / "metrics" / "valid.jsonl").read_text().splitlines()]
    assert f"{valid[-1]['Loss']:.4f}" in card
    recipe = "pretrain/cocomix" if kind.remote else "pretrain/ntp"
    assert f"`{recipe}`" in card and ("trust_remote_code=True" in card) == kind.remote
    record = json.loads((kind.folder / "cocomix_export.json").read_text())
    assert (record["recipe"], record["arm"], record["seed"], record["finished"]) == (recipe, "main", 22, True)


def _file_text(path: Path) -> str:
    """A file's text; for safetensors, its JSON header (the tensors are numbers, not names)."""
    data = path.read_bytes()
    if path.suffix == ".safetensors":
        data = data[8: 8 + int.from_bytes(data[:8], "little")]
    return data.decode("utf-8", errors="replace")


def test_nothing_in_the_export_names_a_path_of_this_machine(kind: Kind, artifact_cache: Path) -> None:
    paths = {str(kind.run), str(kind.run.resolve()), str(artifact_cache), str(Path.home()) + "/",
             tempfile.gettempdir().rstrip("/") + "/"}
    files = [p for p in kind.folder.rglob("*") if p.is_file()]
    assert {"config.json", "generation_config.json", "tokenizer.json", "README.md", "cocomix_export.json"} <= {
        p.name for p in files}
    found = [(p.name, path) for p in files for path in paths if path in _file_text(p)]
    assert not found
