"""Fixtures for the analysis tests: a small tokenizer and run folders written in the runtime's
layout (``cocomix.eval.run_folder``), with made-up metric records, so nothing trains.

Helpers are handed out as fixtures (not imported from here) so the tests work under any pytest
import mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from cocomix.eval.run_folder import save_run_folder
from cocomix.models import CocoLMConfig, create_cocomix_lm


def records(losses: Sequence[float], every: int, tokens_per_step: int) -> tuple[list[dict], list[dict]]:
    steps = [every * (i + 1) for i in range(len(losses))]
    train = [{"Step": s, "Loss": l + 0.1, "Total Number of Elements": s * tokens_per_step,
              "Total Time": 2.0 * s, "Elements per Second": 1000.0} for s, l in zip(steps, losses, strict=True)]
    valid = [{"Step": s, "Loss": l, "ppl": math.exp(l)} for s, l in zip(steps, losses, strict=True)]
    return train, valid


@pytest.fixture
def fake_run(spm_path: Path) -> Callable[..., Path]:
    """``fake_run(run_dir, losses, mixer="none", num_concepts=0, config_extra={}, artifacts={})``:
    a run folder whose validation losses at steps 10, 20, ... are ``losses``."""

    def make(run_dir: Path, losses: Sequence[float], *, mixer: str = "none", num_concepts: int = 0,
             config_extra: dict | None = None, artifacts: dict | None = None,
             tokens_per_step: int = 512) -> Path:
        torch.manual_seed(0)
        model = create_cocomix_lm(CocoLMConfig(
            model_dim=16, num_layers=2, num_heads=2, ffn_inner_dim=32, vocab_size=400,
            max_seq_len=64, insert_layer=1, mixer=mixer, num_concepts=num_concepts,
            concept_topk=4 if num_concepts else 32)).eval()
        config = {"train": {"seq_len": 32, "micro_batch_size": 16, "grad_accum": 1},
                  "objective": {"name": "ntp"}, "mixer": {"name": mixer},
                  "concepts": {"name": "none"}, "seed": 0, **(config_extra or {})}
        train, valid = records(losses, 10, tokens_per_step)
        return save_run_folder(run_dir, model, config=config, tokenizer=spm_path,
                               step=10 * len(losses), artifacts=artifacts,
                               train_records=train, valid_records=valid)

    return make
