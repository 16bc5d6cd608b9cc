"""Shared test set-up: offline, CPU, and one artifact cache (tokenizer, shards) per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never reach for a hub: a test that tries fails instead of hanging.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist (`-n 2`, the README's test command) each worker gets one core: one intra-op
# thread per worker and per run it launches, not two workers each asking for every core.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def artifact_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer/shard cache for the whole session, so only the first run trains them."""
    path = tmp_path_factory.mktemp("artifacts")
    os.environ["COCOMIX_ARTIFACTS"] = str(path)
    return path


@pytest.fixture(scope="session")
def spm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SentencePiece model (vocab 400) trained on the shipped English text."""
    from cocomix.data.corpora import build_corpus
    from cocomix.data.tokenizers import SentencePieceConfig, train_sentencepiece, training_sentences

    config = SentencePieceConfig(vocab_size=400, max_train_chars=300_000)
    data = train_sentencepiece(training_sentences(build_corpus("pd_english"), 300_000), config)
    path = tmp_path_factory.mktemp("spm") / "spm.model"
    path.write_bytes(data)
    return path
