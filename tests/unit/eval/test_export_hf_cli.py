"""tools/export_hf.py on run folders written in-process: what exports, what is refused, in one line;
an unfinished run only when asked for; and the CoCoMix model's ``forward`` takes what a
``transformers`` causal LM takes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoMixLM
from tools.export_hf import main

transformers = pytest.importorskip("transformers")


def write_run(folder: Path, model: CocoMixLM, spm_path: Path, *, steps: int = 3) -> Path:
    """A run of ``steps`` configured steps whose only checkpoint is step 3."""
    return save_run_folder(folder, model, config={"steps": steps, "train": {"seq_len": 32}, "objective": {"name": "x"}},
                           tokenizer=spm_path, step=3)


def test_concept_prediction_only_exports_as_gpt2_without_its_head(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_lm(num_concepts=16, concept_topk=4, concept_compress=False)  # head never feeds the LM
    run = write_run(tmp_path / "run", model, spm_path)
    assert main([str(run), str(tmp_path / "out")]) == 0
    assert "left out: the concept head" in capsys.readouterr().out
    exported = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    tokens = torch.randint(0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (exported(tokens).logits - model.forward_lm(tokens).logits).abs().max() <= 1e-5


@pytest.mark.parametrize("mixer", ["add", "interleave", "pause"])
def test_mixing_runs_export_with_modeling_code_that_matches(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, mixer: str
) -> None:
    concepts = {} if mixer == "pause" else {"num_concepts": 16, "concept_topk": 4}
    model = tiny_lm(mixer=mixer, **concepts)
    run = write_run(tmp_path / "run", model, spm_path)
    assert main([str(run), str(tmp_path / f"out_{mixer}")]) == 0
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / f"out_{mixer}", trust_remote_code=True)
    tokens = torch.randint(0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (exported.eval()(tokens).logits - model.forward_lm(tokens).logits).abs().max() <= 1e-5


def test_a_hidden_state_head_is_refused_in_one_line(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_lm(mixer="interleave", concept_head="hidden", teacher_dim=16)
    run = write_run(tmp_path / "run", model, spm_path)
    assert main([str(run), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'hidden' concept head" in err and "SAE-concept head only" in err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_an_existing_output_folder_is_refused_and_kept(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", tiny_lm(), spm_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([str(run), str(out)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main([str(run), str(out), "--step", "7"]) == 2
    assert main([str(run), str(tmp_path / "other"), "--step", "7"]) == 2
    assert "has no checkpoint at step 7" in capsys.readouterr().err


def test_an_unfinished_run_is_refused_unless_asked_for(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", tiny_lm(), spm_path, steps=10)  # stopped at 3 of 10 (stop_at=3)
    assert main([str(run), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "unfinished: its last checkpoint is step 3 of the 10" in err and "--allow-unfinished" in err
    assert not (tmp_path / "out").exists()
    for flags, out in ((["--allow-unfinished"], "allowed"), (["--step", "3"], "explicit")):
        assert main([str(run), str(tmp_path / out), *flags]) == 0
        assert "at step 3 (unfinished: step 3 of 10)" in capsys.readouterr().out
        assert "**Unfinished:** this is step 3 of the 10" in (tmp_path / out / "README.md").read_text()
        record = json.loads((tmp_path / out / "cocomix_export.json").read_text())
        assert (record["step"], record["steps"], record["finished"]) == (3, 10, False)


def test_a_finished_run_says_nothing_about_being_unfinished(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = write_run(tmp_path / "run", tiny_lm(), spm_path, steps=3)
    assert main([str(run), str(tmp_path / "out")]) == 0
    assert "unfinished" not in capsys.readouterr().out.lower()
    assert "unfinished" not in (tmp_path / "out" / "README.md").read_text().lower()


def test_cocomix_forward_takes_what_a_transformers_causal_lm_takes(
    tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path
) -> None:
    model = tiny_lm(mixer="interleave", num_concepts=16, concept_topk=4)
    assert main([str(write_run(tmp_path / "run", model, spm_path)), str(tmp_path / "out")]) == 0
    exported = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", trust_remote_code=True).eval()
    tokens = torch.randint(4, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = exported(tokens)
        ones = torch.ones_like(tokens)
        same = [exported(tokens, attention_mask=ones, token_type_ids=torch.zeros_like(tokens)),
                exported(tokens, position_ids=torch.arange(12)[None].expand(2, -1), cache_position=torch.arange(12)),
                exported(inputs_embeds=exported.get_input_embeddings()(tokens))]
        for out in same:
            assert torch.equal(out.logits, plain.logits)
        logits, *_ = exported(tokens, return_dict=False)
        assert torch.equal(logits, plain.logits)
        hidden = exported(tokens, output_hidden_states=True).hidden_states
        assert len(hidden) == model.config.num_layers + 1 and all(h.shape == (2, 12, 32) for h in hidden)
        with pytest.raises(ValueError, match="no token type embeddings"):
            exported(tokens, token_type_ids=ones)
        with pytest.raises(ValueError, match="past the context of n_positions=32"):
            exported(torch.randint(4, 100, (1, 33)))
