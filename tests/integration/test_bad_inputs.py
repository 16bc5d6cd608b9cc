"""The catalogue of bad inputs (issue 7, docs/reliability.md): every case through the command line.

Each case must exit non-zero with exactly one line `error: <problem>; <fix>`, no traceback, and
leave everything already finished as it was (a finished run, the shared artifact cache). The
cases run through `recipes.run.main` in-process (a subprocess costs ~5 s of imports each);
`tests/integration/test_cli.py` checks the exit code and the missing traceback in a real
process; here one real process checks that `--debug` shows the traceback.
Nothing here trains except two 2-step runs: the teacher and SAE are small files written by the
fixture, and the tokenizer is the session's `spm_path`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from cocomix.experiment import run_recipe

REPO = Path(__file__).resolve().parents[2]
MODEL = ["model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
         "model.insert_layer=1"]
RUN = MODEL + ["train.seq_len=32", "train.micro_batch_size=4", "train.warmup_steps=1",
               "valid.max_batches=1", "steps=2", "log_every=1", "checkpoint_every=2",
               "validate_every=2"]


@dataclass
class World:
    """What the cases point at; built once per module."""

    tmp: Path
    runs: Path
    """Holds a finished NTP run that no case may change."""
    resumable: Path
    """Holds a run stopped at step 2 of 4 whose checkpoint is then corrupted."""
    artifacts: Path
    spm: Path
    other_spm: Path
    teacher: Path
    other_tokenizer_teacher: Path
    sae: Path
    narrow_sae: Path
    garbage: Path

    def ntp(self, *extra: str) -> list[str]:
        return ["pretrain/ntp", *RUN, f"tokenizer.model_file={self.spm}", *extra]

    def concepts(self, *extra: str, teacher: Path | None = None) -> list[str]:
        return [
            "pretrain/cocomix", *RUN, f"tokenizer.model_file={self.spm}", "teacher.source=checkpoint",
            f"teacher.path={teacher or self.teacher}", "teacher.layer=0", "sae.source=file",
            f"sae.path={self.sae}", "sae.n_latents=128", "sae.k=8", "model.concept_topk=8",
            "concepts.k_attr=2", *extra,
        ]

    def into_finished_run(self, args: list[str]) -> list[str]:
        """Aimed at the finished run's folder: the error must come before anything touches it."""
        return [*args, "--runs-dir", str(self.runs)]

    def local(self, name: str, text: bytes) -> list[str]:
        path = self.tmp / name
        path.write_bytes(text)
        return self.ntp("data=local", f"data.files=[{path}]", "data.valid_fraction=0.5")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path, spm_path: Path) -> World:
    from cocomix.concepts.sae import TopKSAE, openai_state_dict
    from cocomix.data.corpora import build_corpus
    from cocomix.data.tokenizers import (
        SentencePieceConfig,
        train_sentencepiece,
        training_sentences,
    )
    from cocomix.eval.run_folder import save_run_folder
    from cocomix.models import CocoLMConfig, create_cocomix_lm

    tmp = tmp_path_factory.mktemp("bad_inputs")
    other_spm = tmp / "other.model"
    config = SentencePieceConfig(vocab_size=500, max_train_chars=50_000)
    other_spm.write_bytes(train_sentencepiece(training_sentences(build_corpus("pd_english"), 50_000), config))

    torch.manual_seed(0)
    lm = create_cocomix_lm(CocoLMConfig(model_dim=64, num_layers=2, num_heads=2, ffn_inner_dim=128,
                                        vocab_size=400, max_seq_len=128, insert_layer=1))
    teacher = save_run_folder(tmp / "teacher", lm, config={"train": {"seq_len": 32}}, tokenizer=spm_path)
    other = save_run_folder(tmp / "teacher_other_tok", lm, config={"train": {"seq_len": 32}},
                            tokenizer=other_spm)
    sae, narrow = tmp / "sae.pt", tmp / "narrow_sae.pt"
    torch.save(openai_state_dict(TopKSAE(64, 128, 8)), sae)
    torch.save(openai_state_dict(TopKSAE(32, 128, 8)), narrow)
    garbage = tmp / "garbage.pt"
    garbage.write_bytes(b"not a torch file\n" * 8)

    world = World(tmp, tmp / "runs", tmp / "resumable", artifact_cache, spm_path, other_spm,
                  teacher, other, sae, narrow, garbage)
    run_recipe(world.ntp()[0], world.ntp()[1:], world.runs)
    run_recipe(world.ntp()[0], world.ntp("steps=4", "stop_at=2")[1:], world.resumable)
    model_file = next((world.resumable / "pretrain" / "ntp" / "main" / "seed22" / "checkpoints"
                       / "step_2" / "model").rglob("*.pt"))
    model_file.write_bytes(model_file.read_bytes()[:200])  # truncated, as by a full disk
    return world


def _stale_cache(w: World) -> list[str]:
    folder = w.tmp / "stale_labels"
    folder.mkdir(exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"key": "0123456789abcdef"}))
    return w.concepts("concepts=cached", f"concepts.path={folder}")


def _duplicate_plugin(w: World) -> list[str]:
    (w.tmp / "dup_plugin.py").write_text(
        "from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig\n"
        "from cocomix.registry import OBJECTIVES\n"
        "@OBJECTIVES.register('ntp', NtpConfig)\n"
        "class MyNtp(NextTokenPrediction): ...\n"
    )
    return w.ntp("plugins=[dup_plugin]")


def _corrupt_teacher(w: World) -> list[str]:
    import shutil

    broken = w.tmp / "broken_teacher"
    if not broken.exists():
        shutil.copytree(w.teacher, broken)
        for file in broken.rglob("*.pt"):
            file.write_bytes(b"\x00" * 64)
    return w.concepts(teacher=broken)


def _plugin(w: World, name: str, source: str) -> list[str]:
    (w.tmp / f"{name}.py").write_text(source)
    return w.ntp(f"plugins=[{name}]")


def _breach(kind: str) -> Callable[[World], list[str]]:
    return lambda w: w.ntp("plugins=[contract_plugin]", "objective=contract_breach",
                           f"objective.breach={kind}")


def _unwritable(w: World) -> list[str]:
    blocker = w.tmp / "a_file"
    blocker.write_text("a file where the runs folder should be\n")
    return [*w.ntp(), "--runs-dir", str(blocker / "runs")]


# (case, argv for `recipes.run`, text the one error line must contain). Cases without their own
# --runs-dir get a fresh one.
CASES: list[tuple[str, Callable[[World], list[str]], str]] = [
    ("unknown recipe", lambda w: ["pretrain/ntq"], "unknown recipe 'pretrain/ntq'; known recipes: "),
    ("unknown objective", lambda w: w.ntp("objective=ntpp"), "unknown objective 'ntpp'; known: cocomix,"),
    ("unknown mixer", lambda w: w.ntp("mixer=blend"), "unknown mixer 'blend'; known: add, interleave,"),
    ("unknown concept source", lambda w: w.ntp("concepts=magic"), "unknown concepts 'magic'; known: activation,"),
    ("unknown corpus", lambda w: w.ntp("data=wiki"), "unknown data 'wiki'; known: latent_topics, local,"),
    ("unknown arch", lambda w: w.ntp("model=gpt5"), "unknown model 'gpt5'; known: gpt2_124m,"),
    ("typo in a key", lambda w: w.into_finished_run(w.ntp("train.lrr=1e-3")), "unknown key 'train.lrr' (from override `train.lrr=1e-3`); check its spelling"),
    ("wrong type", lambda w: w.into_finished_run(w.ntp("steps=ten")), "bad value in `steps=ten`: steps takes an integer"),
    ("steps <= 0", lambda w: w.into_finished_run(w.ntp("steps=0")), "steps=0 must be a positive number of optimizer steps; fix steps"),
    ("insert layer outside the model", lambda w: w.into_finished_run(w.ntp("model.insert_layer=5")), "model.insert_layer=5 is outside the model (model.num_layers=2): choose 0..2"),
    ("k > number of concepts", lambda w: w.concepts("sae.source=train", "model.concept_topk=200"), "k=200 is larger than the number of concepts (128); lower model.concept_topk"),
    ("K_attr > k", lambda w: w.concepts("sae.source=train", "concepts.k_attr=9"), "K_attr=9 must be in 1..8 (the SAE's sae.k=8); lower concepts.k_attr"),
    ("teacher and student tokenizers differ", lambda w: w.concepts(teacher=w.other_tokenizer_teacher), "was trained with another tokenizer"),
    ("SAE width != teacher hidden size", lambda w: w.concepts(f"sae.path={w.narrow_sae}"), "SAE width 32 does not match the teacher's hidden size 64"),
    ("missing teacher", lambda w: w.concepts(teacher=w.tmp / "no_teacher"), "does not exist; check the path (e.g. teacher.path)"),
    ("corrupt teacher", _corrupt_teacher, "sdp_00.pt (not a torch file, or truncated); restore it, or delete checkpoints/step_1 to use an earlier step"),
    ("missing SAE file", lambda w: w.concepts(f"sae.path={w.tmp / 'no_sae.pt'}"), "does not exist; fix sae.path or set sae.source=train"),
    ("corrupt SAE file", lambda w: w.concepts(f"sae.path={w.garbage}"), "garbage.pt as a torch state dict (not a torch file, or truncated)"),
    ("corrupt checkpoint on resume", lambda w: [*w.ntp("steps=4"), "--runs-dir", str(w.resumable)], "its model checkpoint of step 2 is missing or corrupt; restore it, or delete "),
    ("empty corpus", lambda w: w.local("empty.txt", b"\n\n   \n"), "the local corpus is empty"),
    ("corpus shorter than one sequence", lambda w: w.local("short.txt", b"A few words.\n\nAnd a few more.\n"), "fewer than one sequence of train.seq_len+1=33; add text or lower train.seq_len"),
    ("non-UTF-8 text", lambda w: w.local("latin1.txt", "caf\u00e9 cr\u00e8me\n\nna\u00efve\n".encode("latin-1")), "is not valid UTF-8 (byte 3); re-encode it to UTF-8"),
    ("unwritable runs folder", _unwritable, "pass a writable --runs-dir"),
    ("stale concept cache", _stale_cache, "stale concept cache"),
    ("plugin module not found", lambda w: w.ntp("plugins=[no_such_plugin]"), "plugin module 'no_such_plugin' not found"),
    ("plugin registers a duplicate name", _duplicate_plugin, "objectives 'ntp' is registered twice (by cocomix.objectives.ntp and by dup_plugin); rename one of them"),
    ("non-finite loss (divergence)", lambda w: w.ntp("plugins=[divergent_plugin]", "objective=divergent_ntp", "objective.nan_from_call=2", "checkpoint_every=1"), "the loss is nan at step 2; training stopped before this step updated the weights (last good checkpoint: step 1 in "),
    ("non-finite gradients, finite loss", lambda w: w.ntp("plugins=[divergent_plugin]", "objective=divergent_ntp", "objective.nan_from_call=2", "objective.nan_in=grad", "checkpoint_every=1"), "the gradient norm is not finite at step 2; training stopped before this step updated the weights (last good checkpoint: step 1 in "),
    ("resume with a different config", lambda w: w.into_finished_run(w.ntp("train.lr=0.5")), "holds a run with a different config (train.lr: "),
    ("override without =", lambda w: w.into_finished_run(w.ntp("steps")), "override `steps` is not key=value; write steps=VALUE"),
    ("list item with =", lambda w: w.into_finished_run(w.ntp("teacher.overrides=[steps=4]")), "override `teacher.overrides=[steps=4]` cannot be parsed (no viable alternative at input '[steps='); quote values"),
    ("plugin with a syntax error", lambda w: _plugin(w, "syntax_plugin", "def broken(:\n"), "plugin module 'syntax_plugin' has a syntax error at "),
    ("plugin with a missing dependency", lambda w: _plugin(w, "needy_plugin", "import no_such_dependency\n"), "plugin module 'needy_plugin' imports 'no_such_dependency', which is not installed"),
    ("plugin that fails at import", lambda w: _plugin(w, "raising_plugin", "x = 1 / 0\n"), "plugin module 'raising_plugin' failed while importing: ZeroDivisionError: division by zero (at "),
    ("objective raises", _breach("raises"), "objective 'contract_breach' (contract_plugin.ContractBreach) raised KeyError: 'concept_ids' (at "),
    ("objective loss per token", _breach("per_token"), "objective 'contract_breach' (contract_plugin.ContractBreach): compute() returned a loss of shape (128,), not a scalar"),
    ("objective loss detached", _breach("detached"), "compute() returned a loss detached from the model"),
    ("objective loss a float", _breach("plain_float"), "compute() returned a loss of type float, not a tensor"),
    ("objective metric undeclared", _breach("undeclared_metric"), "compute() returned metrics ['my_metric'] that its contract's metrics do not declare"),
    ("empty data file", lambda w: w.local("zero.txt", b""), "zero.txt is empty (0 bytes); give it text or remove it from data.files"),
    ("NUL bytes", lambda w: w.local("nul.txt", b"\x00" * 4096), "nul.txt line 1 contains NUL bytes, so it is not a text file"),
    ("malformed JSONL", lambda w: w.local("bad.jsonl", b'{"text": "a"}\n{"text": "b"\n'), "bad.jsonl line 2 is not valid JSON (Expecting ',' delimiter, column 1)"),
    ("JSONL text that is not a string", lambda w: w.local("number.jsonl", b'{"text": "a"}\n{"text": 5}\n'), "number.jsonl line 2: field 'text' holds a JSON number (5), not a string; write every record's 'text' as a string"),
    ("unclosed bracket in an override", lambda w: w.into_finished_run(w.ntp("seeds=[0,")), "override `seeds=[0,` cannot be parsed: unclosed bracket '['; close it with ']'"),
]


def snapshot(world: World) -> dict[Path, tuple[int, int]]:
    roots = [world.runs, world.artifacts, world.resumable / "pretrain" / "ntp" / "main" / "seed22" / "checkpoints" / "step_2"]
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for root in roots for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("argv", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_loses_nothing(
    argv: Callable[[World], list[str]], expected: str, world: World, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recipes.run import main

    monkeypatch.syspath_prepend(str(world.tmp))  # the duplicate-name plugin lives there
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # and the divergent one here
    args = argv(world)
    if "--runs-dir" not in args:
        args += ["--runs-dir", str(tmp_path)]
    before = snapshot(world)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err[-2000:]
    assert expected in errors[0], errors[0]
    assert "Traceback" not in err
    after = snapshot(world)
    assert [p for p in before if after.get(p) != before[p]] == []


def test_debug_shows_the_traceback_in_a_real_process() -> None:
    # Exit code and the one line without traceback in a real process: tests/integration/test_cli.py.
    out = subprocess.run(
        [sys.executable, "-m", "recipes.run", "pretrain/ntp", "objective=ntpp", "--dry-run", "--debug"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "unknown objective 'ntpp'" in out.stderr
