"""Shared fixtures for the model-family tests: small fp32 models on CPU.

Helpers are handed out as fixtures (not imported from here) so the tests work under any pytest
import mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cocomix.models import CocoLMConfig, CocoMixLM, create_cocomix_lm

REPO_ROOT = Path(__file__).resolve().parents[3]


def _small_config(**overrides: object) -> CocoLMConfig:
    """Faster than ``tiny`` for behavioural tests: vocab 97, d=32, 3 blocks, insert before 1."""
    base: dict[str, object] = dict(
        model_dim=32, num_layers=3, num_heads=4, ffn_inner_dim=128, vocab_size=97,
        max_seq_len=64, insert_layer=1, dropout_p=0.0,
    )
    base.update(overrides)
    return CocoLMConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def small_config() -> Callable[..., CocoLMConfig]:
    return _small_config


@pytest.fixture
def small_model() -> CocoMixLM:
    torch.manual_seed(0)
    return create_cocomix_lm(_small_config()).eval()


def _run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run code in a fresh interpreter with the repo importable (for fairseq2's process-global
    state and for ``sys.modules`` checks)."""
    return _run_python
