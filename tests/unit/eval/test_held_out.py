"""``held_out_ppl``: the summary's test perplexity, scored once per checkpoint and kept in the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cocomix.eval import evaluate_run
from cocomix.eval.held_out import CACHE_FILE, held_out_ppl
from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


@pytest.fixture
def save_step(tmp_path: Path, tiny_lm: Callable[..., CocoMixLM], spm_path: Path) -> Callable[..., Path]:
    """``save_step(n, retrain=0)`` writes a checkpoint at step n whose weights differ from every
    other (step, retrain) pair's."""

    def write(step: int, retrain: int = 0) -> Path:
        model = tiny_lm()
        generator = torch.Generator().manual_seed(1000 * retrain + step)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
        return save_run_folder(tmp_path / "run", model, config={"train": {"seq_len": 32}},
                               tokenizer=spm_path, step=step)

    return write


def test_score_is_the_suites_english_pool_and_is_read_back(save_step: Callable[..., Path]) -> None:
    run = save_step(3)
    first = held_out_ppl(run, 200)
    assert not first.cached and first.step == 3
    assert first.ppl == evaluate_run(run, tasks=["ppl"], max_tokens=200)["ppl"]["pd_english/all"]["ppl"]
    # A stored score is returned without loading the model: change it on disk and it is read back.
    stored = json.loads((run / CACHE_FILE).read_text())
    stored["ppl"] = 123.0
    (run / CACHE_FILE).write_text(json.dumps(stored))
    again = held_out_ppl(run, 200)
    assert again.cached and again.ppl == 123.0


def test_new_checkpoint_other_cap_or_unreadable_file_score_again(save_step: Callable[..., Path]) -> None:
    run = save_step(3)
    at_3 = held_out_ppl(run, 200).ppl
    save_step(5)
    at_5 = held_out_ppl(run, 200)
    assert not at_5.cached and at_5.step == 5 and at_5.ppl != at_3
    other_cap = held_out_ppl(run, 150)
    assert not other_cap.cached and other_cap.ppl != at_5.ppl
    (run / CACHE_FILE).write_text('{"key": {"st')
    assert not held_out_ppl(run, 150).cached
    assert held_out_ppl(run, 150).cached
    # Retrained into the same folder: same step, other weights.
    save_step(5, retrain=1)
    retrained = held_out_ppl(run, 150)
    assert not retrained.cached and retrained.step == 5 and retrained.ppl != other_cap.ppl


def test_a_run_without_checkpoint_or_a_zero_cap_is_refused(tmp_path: Path, save_step: Callable[..., Path]) -> None:
    with pytest.raises(CocomixError, match="no checkpoint to score"):
        held_out_ppl(tmp_path, 200)
    with pytest.raises(CocomixError, match="max_tokens must be >= 1"):
        held_out_ppl(save_step(1), 0)
