"""recipes/paper/faithful_69m end to end on local stand-ins in the paper's formats: a randomly
initialised GPT-2 saved in Hugging Face format (vocab 50257), a random OpenAI-format SAE
(32768 latents, k=32) on its block-5 residual, and a small OpenWebText-format parquet corpus.
Nothing is downloaded; the loaders are the ones a GPU run uses on the real files."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cocomix.data.gpt2_bpe import packaged_files_dir
from cocomix.registry import CocomixError
from cocomix.experiment import run_recipe

REPO = Path(__file__).resolve().parents[2]
WORDS = (
    "the ship sailed at dawn across a grey sea while sailors sang of home and the captain read "
    "old maps by lamp light so that every wave seemed to carry news from distant ports"
).split()
TINY_RUN = [
    "preset=tiny", "steps=2", "train.seq_len=32", "train.micro_batch_size=2", "train.warmup_steps=1",
    "valid.batch_size=2", "valid.max_batches=1", "log_every=1", "checkpoint_every=2", "validate_every=2",
    "summary_test_tokens=0", "data.valid_fraction=0.1",
]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import GPT2Config, GPT2LMHeadModel

    from cocomix.concepts.sae import TopKSAE, save_openai_sae

    root = tmp_path_factory.mktemp("paper_files")
    torch.manual_seed(0)
    # GPT-2's vocabulary and 6 blocks (block 5 exists), everything else tiny.
    config = GPT2Config(vocab_size=50257, n_positions=64, n_embd=32, n_layer=6, n_head=2)
    GPT2LMHeadModel(config).eval().save_pretrained(root / "gpt2")  # model.safetensors + config.json
    save_openai_sae(TopKSAE(32, 32768, 32, generator=torch.Generator().manual_seed(0)), root / "sae" / "5.pt")
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120))) + "." for _ in range(60)]
    (root / "owt").mkdir()
    pq.write_table(pa.table({"text": texts}), root / "owt" / "train-00000.parquet")
    return {"gpt2": root / "gpt2", "sae": root / "sae" / "5.pt", "data": root / "owt"}


def paths(files: dict[str, Path]) -> list[str]:
    return [f"teacher.path={files['gpt2']}", "sae.source=file", f"sae.path={files['sae']}", f"data.path={files['data']}"]


def test_tiny_faithful_run_trains_offline(
    stand_ins: dict[str, Path], tmp_path: Path, artifact_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The KD arm is left out for time; it reads the same teacher through the same loader.
    overrides = TINY_RUN + paths(stand_ins) + ["only_arms=[ntp,cocomix]"]
    # tools/prepare.py builds the shards and checks teacher and SAE once, as before a torchrun.
    spec = importlib.util.spec_from_file_location("tool_prepare", REPO / "tools" / "prepare.py")
    assert spec is not None and spec.loader is not None
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    assert prepare.main(["paper/faithful_69m", *overrides, "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "GPT2BPETokenizer" in out and f"sae: {stand_ins['sae']} (checked)" in out
    built = {p: p.stat().st_mtime_ns for p in (artifact_cache / "shards").glob("*/tokens.bin")}
    assert built
    runs = run_recipe("paper/faithful_69m", overrides, tmp_path)
    # The run reused what prepare built (nothing re-tokenized, no new shard).
    assert {p: p.stat().st_mtime_ns for p in (artifact_cache / "shards").glob("*/tokens.bin")} == built
    assert [r.path.parent.name for r in runs] == ["ntp", "cocomix"]
    for run in runs:
        config = (run.path / "config.yaml").read_text()
        assert "name: gpt2_bpe" in config and "name: openwebtext" in config
        last = json.loads((run.path / "metrics" / "train.jsonl").read_text().splitlines()[-1])
        assert last["Step"] == 2 and last["Loss"] > 0
    record = json.loads((runs[1].path / "artifacts.json").read_text())
    assert record["teacher"] == str(stand_ins["gpt2"]) and record["sae"] == str(stand_ins["sae"])
    assert record["teacher_layer"] == 5
    last = json.loads((runs[1].path / "metrics" / "train.jsonl").read_text().splitlines()[-1])
    assert last["loss_concept"] > 0  # labels from the GPT-2 teacher through the OpenAI-format SAE
    # The evaluation tools reload the run with its GPT-2 tokenizer from artifacts.json.
    from cocomix.data.gpt2_bpe import GPT2BPETokenizer
    from cocomix.eval import load_run

    loaded = load_run(runs[1].path)
    assert isinstance(loaded.tokenizer, GPT2BPETokenizer) and loaded.tokenizer.encode("Hello world") == [15496, 995]


def test_mismatches_with_the_student_are_one_clear_error(stand_ins: dict[str, Path], spm_path: Path,
                                                        tmp_path: Path) -> None:
    import shutil

    from transformers import GPT2TokenizerFast

    from cocomix.concepts.sae import load_openai_sae
    from cocomix.data.tokenizer_loading import load_tokenizer
    from cocomix.runtime.concept_artifacts import _check_declared_sae
    from cocomix.runtime.hf_teacher import HFCausalLMTeacher, check_positions, read_shape
    from cocomix.runtime.teacher import check_teacher_layer
    from cocomix.runtime.hf_tokenizer_check import check_student_tokenizer

    # GPT-2's folder on the hub holds its tokenizer: the stand-in gets GPT-2's own files too.
    folder = tmp_path / "gpt2"
    shutil.copytree(stand_ins["gpt2"], folder)
    files = packaged_files_dir()
    GPT2TokenizerFast(vocab_file=str(files / "encoder.json"), merges_file=str(files / "vocab.bpe")).save_pretrained(folder)
    teacher = HFCausalLMTeacher(folder)
    gpt2_bpe = load_tokenizer(packaged_files_dir())
    check_student_tokenizer(folder, teacher, gpt2_bpe)  # tiktoken over GPT-2's files is GPT-2's tokenizer
    with pytest.raises(CocomixError, match="student's tokenizer \\(SentencePieceTokenizer.*is not the teacher's.*"
                                           "set tokenizer=hf tokenizer.path="):
        check_student_tokenizer(folder, teacher, load_tokenizer(spm_path))
    with pytest.raises(CocomixError, match="train.seq_len=128 exceeds .*max_position_embeddings=64"):
        check_positions(read_shape(folder), folder, 128)
    with pytest.raises(CocomixError, match="teacher.layer=6 is outside .* \\(6 blocks\\): choose 0..5"):
        check_teacher_layer(6, read_shape(folder).num_layers)
    sae = load_openai_sae(stand_ins["sae"], expected_d_model=32)
    declared = SimpleNamespace(path=stand_ins["sae"], n_latents=1024, k=16)
    with pytest.raises(CocomixError, match="has 32768 latents and k=32.*set sae.n_latents=32768 sae.k=32"):
        _check_declared_sae(sae, declared)
    with pytest.raises(CocomixError, match="SAE width 32 does not match the teacher's hidden size 768"):
        load_openai_sae(stand_ins["sae"], expected_d_model=768)


def test_the_runner_reports_a_wrong_sae_in_one_line(
    stand_ins: dict[str, Path], tmp_path: Path, artifact_cache: Path
) -> None:
    from cocomix.concepts.sae import TopKSAE, save_openai_sae

    wrong = save_openai_sae(TopKSAE(48, 32768, 32), tmp_path / "sae48.pt")
    overrides = TINY_RUN + paths(stand_ins) + ["only_arms=[cocomix]", f"sae.path={wrong}"]
    with pytest.raises(CocomixError, match="SAE width 48 does not match the teacher's hidden size 32") as info:
        run_recipe("paper/faithful_69m", overrides, tmp_path)
    assert "\n" not in str(info.value)


def test_gpt2_weights_load_from_either_hf_file(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from cocomix.runtime.hf_teacher import HFCausalLMTeacher

    model = GPT2LMHeadModel(GPT2Config(vocab_size=97, n_positions=16, n_embd=16, n_layer=2, n_head=2))
    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert (tmp_path / "bin" / "pytorch_model.bin").is_file()
    assert HFCausalLMTeacher(tmp_path / "bin").vocab_size == 97
    (tmp_path / "bare").mkdir()
    (tmp_path / "bin" / "config.json").replace(tmp_path / "bare" / "config.json")
    with pytest.raises(CocomixError, match="cannot load .*bare as a causal LM"):
        HFCausalLMTeacher(tmp_path / "bare")
