"""The four tools end to end: a real NTP run trained by the runtime, and a concept run folder
written in the runtime's layout that uses that run as its teacher (no concept training)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from cocomix.runtime.flops import TeacherCost, training_flops_per_token
from cocomix.concepts.sae import TopKSAE, save_openai_sae
from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.runtime.rundir import read_artifacts, read_config, write_config
from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoLMConfig, create_cocomix_lm
from cocomix.runtime.checkpoint import load_model_config
from cocomix.experiment import run_recipe

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
    "model.insert_layer=1", "train.seq_len=64", "train.micro_batch_size=8",
    "tokenizer.vocab_size=2000", "valid.max_batches=4", "log_every=2", "train.lr=1e-2",
    "steps=4", "train.warmup_steps=2", "checkpoint_every=4", "validate_every=2",
]


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ntp_run(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path) -> Path:
    [run] = run_recipe("pretrain/ntp", SMALL, tmp_path_factory.mktemp("runs"))
    return run.path


@pytest.fixture(scope="module")
def concept_run(ntp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CoCoMix-shaped run (interleave, 64 concepts) whose teacher is the trained NTP run."""
    root = tmp_path_factory.mktemp("concept")
    sae_path = save_openai_sae(TopKSAE(64, 64, 4, generator=torch.Generator().manual_seed(0)),
                               root / "sae.pt")
    artifacts = read_artifacts(ntp_run)
    torch.manual_seed(0)
    vocab = load_model_config(ntp_run).vocab_size
    model = create_cocomix_lm(CocoLMConfig(
        model_dim=32, num_layers=2, num_heads=2, ffn_inner_dim=64, vocab_size=vocab,
        max_seq_len=64, insert_layer=1, mixer="interleave", num_concepts=64, concept_topk=4)).eval()
    config = {"train": {"seq_len": 64}, "objective": {"name": "cocomix"},
              "concepts": {"name": "attribution", "variant": "code", "k_attr": 2},
              "sae": {"source": "file", "n_latents": 64, "k": 4}}
    train = [{"Step": s, "Total Number of Elements": s * 512} for s in (2, 4)]
    valid = [{"Step": 2, "Loss": 7.0, "ppl": 1096.6}, {"Step": 4, "Loss": 6.5, "ppl": 665.1}]
    return save_run_folder(
        root / "pretrain" / "cocomix" / "main" / "seed0", model, config=config,
        tokenizer=artifacts["tokenizer"], step=4, train_records=train, valid_records=valid,
        artifacts={"valid_shard": artifacts["valid_shard"], "teacher": str(ntp_run),
                   "sae": str(sae_path), "teacher_layer": 0},
    )


def test_evaluate_tool(ntp_run: Path, concept_run: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    assert tool("evaluate").main([str(ntp_run), str(concept_run), "--max-tokens", "400",
                                  "--cloze-items", "8", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| metric | main/seed22 @4 | main/seed0 @4 |" in table
    for row in ("| ppl/sotu |", "| ppl/pystdlib |", "| bpb/all |", "| cloze/acc |"):
        assert row in table
    ntp, _ = json.loads(out.read_text())
    valid_loss = json.loads((ntp_run / "metrics" / "valid.jsonl").read_text().splitlines()[-1])["Loss"]
    # Held-out English test text vs the run's own validation split: same order of magnitude.
    assert abs(ntp["ppl"]["pd_english/all"]["nll"] - valid_loss) < 1.0
    assert ntp["cloze"]["n"] == 8


def test_compare_tool_counts_teacher_flops(ntp_run: Path, concept_run: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    assert tool("compare").main([str(ntp_run), str(concept_run), "--out", str(out),
                                 "--baseline", "pretrain/ntp/main"]) == 0
    text = capsys.readouterr().out
    assert (out / "valid_loss_vs_tokens.png").is_file() and (out / "valid_loss_vs_flops.png").is_file()
    assert "## Tokens to reach the baseline" in text
    report = json.loads((out / "compare.json").read_text())
    runs = {Path(r["run"]).name: r for r in report["runs"]}
    ntp_config, concept_config = load_model_config(ntp_run), load_model_config(concept_run)
    ntp_flops = training_flops_per_token(ntp_config, 64).total * runs["seed22"]["tokens"]
    assert runs["seed22"]["flops"] == pytest.approx(ntp_flops)
    teacher = TeacherCost.from_config(ntp_config, 0, mode="attribution", sae_latents=64, sae_k=4)
    concept = training_flops_per_token(concept_config, 64, teacher=teacher).total * 4 * 512
    assert runs["seed0"]["flops"] == pytest.approx(concept)


def test_steer_and_concepts_tools(concept_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool("steer").main([str(concept_run), "--prompt", "The ship sailed", "--concept", "3",
                               "--scale", "1", "--max-new-tokens", "8", "--greedy"]) == 0
    text = capsys.readouterr().out
    assert "--- unsteered" in text and "identical continuations" in text
    assert tool("concepts").main([str(concept_run), "--text", "Call me Ishmael.", "--top", "2",
                                  "--examples", "2", "--scan-tokens", "2000"]) == 0
    text = capsys.readouterr().out
    assert "| # | token | concept 1 (logit) | concept 2 (logit) |" in text
    assert "held-out tokens" in text and "[[" in text


def test_cli_error_is_one_line(ntp_run: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "steer.py"), str(ntp_run), "--prompt", "x",
         "--concept", "0", "--scale", "2"], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "no concept head" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("greedy", [False, True])
@pytest.mark.parametrize("scale", ["nan", "inf", "-inf"])
def test_steer_refuses_a_non_finite_scale_before_loading_the_run(
    concept_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    scale: str, greedy: bool,
) -> None:
    # Before: nan with sampling was a traceback, with --greedy a "steered" text of unknown tokens;
    # inf printed the unsteered text.
    import cocomix.eval.loading as loading

    monkeypatch.setattr(loading, "load_run", lambda *_, **__: pytest.fail("the run was loaded"))
    argv = [str(concept_run), "--prompt", "The ship sailed", "--concept", "3", f"--scale={scale}",
            "--max-new-tokens", "4", *(["--greedy"] if greedy else [])]
    capsys.readouterr()
    assert tool("steer").main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --scale {scale} is not a finite number; give a finite logit multiplier "
        f"(1 = no change; the paper uses -10..10)"
    )


def test_steer_and_concepts_hold_one_length_rule_the_trained_context(
    concept_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # A run trained on 16-token windows of a model built for 64: concepts used to accept up to 64.
    run = tmp_path / "seq16"
    shutil.copytree(concept_run, run)
    config = read_config(run)
    config["train"]["seq_len"] = 16
    write_config(run, config)
    text = "The ship sailed out of the harbour at dawn, and the gulls followed it far out to sea."
    n = len(load_tokenizer(read_artifacts(run)["tokenizer"]).encode(text))
    assert 16 < n + 3 <= 64
    limit = "more than the run's trained context (train.seq_len=16); "
    cases = [
        ("concepts", ["--text", text, "--top", "2"], f"--text is {n} tokens, {limit}shorten it to at most 16 tokens"),
        ("steer", ["--prompt", text, "--concept", "3", "--scale", "2", "--max-new-tokens", "4"],
         f"the text the model reads (--prompt's {n} tokens + --max-new-tokens 4 - 1) is "
         f"{max(n, n + 3)} tokens, {limit}" + ("shorten --prompt to at most 16 tokens" if n > 16 else
                                              f"lower --max-new-tokens to at most {17 - n}, or shorten --prompt")),
        ("steer", ["--prompt", "The ship", "--concept", "3", "--scale", "2", "--max-new-tokens", "40"],
         "+ --max-new-tokens 40 - 1) is "),
    ]
    for name, args, expected in cases:
        capsys.readouterr()
        assert tool(name).main([str(run), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert expected in err and limit in err, err
    assert "lower --max-new-tokens to at most" in err


@pytest.mark.parametrize(
    ("name", "option", "target", "expected"),
    [
        ("evaluate", "--json", "folder", "--json {} is a folder; give a file name"),
        ("evaluate", "--json", "under_a_file", "cannot be created: {} is a file"),
        ("compare", "--out", "a_file", "--out {} is a file; give a folder"),
        ("compare", "--out", "under_a_file", "cannot be created: {} is a file"),
    ],
)
def test_an_unwritable_output_is_refused_before_the_work(
    ntp_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    name: str, option: str, target: str, expected: str,
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    path = {"folder": tmp_path, "a_file": blocker, "under_a_file": blocker / "out" / "x.json"}[target]
    # The work itself must not start: loading the run would be the first step of either tool.
    import cocomix.analysis.compare_report as compare_report
    import cocomix.eval as evaluation

    for module in (evaluation, compare_report):
        monkeypatch.setattr(module, "discover_runs", lambda *_: pytest.fail("the work started"))
    args = [str(ntp_run), option, str(path)] + (["--tasks", "ppl"] if name == "evaluate" else [])
    capsys.readouterr()
    assert tool(name).main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    shown = blocker if target == "under_a_file" else path
    assert expected.format(shown) in err


def test_a_plugin_concept_source_trains_end_to_end_and_gets_a_flop_count(
    artifact_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # tests/integration/token_class_plugin.py
    [run] = run_recipe("pretrain/cocomix", [*SMALL, "plugins=[token_class_plugin]", "concepts=token_class",
                                            "concepts.num_classes=8", "model.concept_topk=4"], tmp_path)
    metrics = (run.path / "metrics" / "train.jsonl").read_text()
    assert "loss_concept" in metrics
    out = tmp_path / "cmp"
    assert tool("compare").main([str(run.path), "--out", str(out)]) == 0
    [record] = json.loads((out / "compare.json").read_text())["runs"]
    # The source declares no teacher, so the FLOPs are the student's own (concept head included).
    config = load_model_config(run.path)
    assert config.num_concepts == 8
    assert record["flops"] == pytest.approx(training_flops_per_token(config, 64).total * record["tokens"])
    assert "FLOPs unknown" not in capsys.readouterr().out


def test_latent_topics_tools_run_and_refuse_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    learn = tool("latent_learnability")
    assert learn.main(["--steps", "2", "--arity", "1", "--num-topics", "4", "--num-words", "64",
                       "--dim", "16", "--seq-len", "16", "--batch", "2"]) == 0
    assert "step     2  loss " in capsys.readouterr().out
    assert learn.main(["--num-topics", "1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --num-topics=1 must be at least 2; fix --num-topics"
    assert tool("latent_topics_bounds").main(["--num_topics", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: data.num_topics=0 must be")
