"""Build (or reuse) what a run needs before training: corpus, tokenizer, token shards.

Each artifact is cached under the artifact folder, keyed by the hash of everything it depends
on, written under a temporary name and renamed when complete (`cocomix.cache_files`), so
later recipes reuse it and a half-written one is never read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cocomix.data.corpora import Corpus
from cocomix.data.shards import TokenShard, build_shard
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CORPORA, TOKENIZERS, CocomixError
from cocomix.runtime.compose import ComposedRecipe


def artifact_dir(runs_dir: Path) -> Path:
    """Shared by every recipe under one runs folder; `COCOMIX_ARTIFACTS` moves it elsewhere."""
    env = os.environ.get("COCOMIX_ARTIFACTS")
    return Path(env) if env else runs_dir / "_artifacts"


@dataclass
class DataArtifacts:
    corpus: Corpus
    tokenizer: Tokenizer
    train: TokenShard
    valid: TokenShard


def prepare_data(composed: ComposedRecipe, cache_dir: Path) -> DataArtifacts:
    data_name, data_cfg = composed.group("data")
    corpus = CORPORA.build(data_name, data_cfg)
    tok_name, tok_cfg = composed.group("tokenizer")
    tok_corpus = corpus
    if getattr(tok_cfg, "train_corpus", ""):
        tok_corpus = CORPORA.build(tok_cfg.train_corpus)
    tokenizer = TOKENIZERS.build(tok_name, tok_cfg, corpus=tok_corpus, cache_dir=cache_dir)
    train = build_shard(corpus, tokenizer, "train", cache_dir)
    valid = build_shard(corpus, tokenizer, "valid", cache_dir)
    _check_fits_one_window(corpus.name, {"train": train, "valid": valid}, int(composed.cfg.train.seq_len))
    return DataArtifacts(corpus=corpus, tokenizer=tokenizer, train=train, valid=valid)


def _check_fits_one_window(corpus: str, shards: dict[str, TokenShard], seq_len: int) -> None:
    """Said here, before a teacher or the trainer starts, rather than by the data pipeline."""
    window = seq_len + 1  # inputs plus the shifted targets
    for split, shard in shards.items():
        if shard.n_tokens < window:
            raise CocomixError(
                f"the {split} split of corpus {corpus!r} has {shard.n_tokens} tokens, fewer than "
                f"one sequence of train.seq_len+1={window}; add text or lower train.seq_len"
            )
