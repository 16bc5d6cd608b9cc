"""Held-out test perplexity of a finished run, stored beside it so a summary scores it once.

A study's summary reports every finished run's perplexity on the shipped English test text.
Scoring one tiny run takes tens of seconds on a CPU core, so a study of 75 runs spent most of its
summary re-scoring checkpoints that had not changed since the last summary. The score of a
checkpoint is a pure function of (checkpoint weights, token cap, batch size, test text), so it
is written to ``eval/held_out_ppl.json`` in the run folder under exactly that key (the weights
and the text by sha256) and read back while the key matches; a new or retrained checkpoint,
another cap or an edited test text scores again.

Only the English streams are scored (the summary's number is their token-weighted pool,
``pd_english/all`` of ``cocomix.eval.evaluate_run``, computed the same way).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocomix.cache_files import atomic_write_text, sha256_file
from cocomix.data.corpora import Corpus, build_corpus
from cocomix.eval.loading import load_run
from cocomix.eval.perplexity import corpus_perplexities, pooled
from cocomix.registry import CocomixError
from cocomix.runtime.rundir import checkpoint_steps

CACHE_FILE = Path("eval") / "held_out_ppl.json"
TEST_CORPUS = "pd_english"


@dataclass(frozen=True)
class HeldOutScore:
    ppl: float
    step: int
    cached: bool
    """True when read from the run folder rather than computed now."""


@functools.lru_cache(maxsize=1)
def _test_text() -> tuple[Corpus, str]:
    """The test corpus and a sha256 over its test documents (source and text) in corpus order;
    read once per process, since a summary scores many runs."""
    corpus = build_corpus(TEST_CORPUS)
    digest = hashlib.sha256()
    for doc in corpus.documents("test"):
        for part in (doc.source, doc.text):
            encoded = part.encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little"))
            digest.update(encoded)
    return corpus, digest.hexdigest()


def _checkpoint_digest(run_dir: Path, step: int) -> str:
    """sha256 over the model files of the checkpoint at ``step`` (relative path and bytes), so a
    run retrained into the same folder is not taken for the one that was scored."""
    model_dir = run_dir / "checkpoints" / f"step_{step}" / "model"
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(model_dir)}\0{sha256_file(path)}\0".encode("utf-8"))
    return digest.hexdigest()


def _read_cache(path: Path) -> dict[str, Any] | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or not JSON (edited or copied by hand): score again
    return stored if isinstance(stored, dict) else None


def held_out_ppl(run_dir: Path | str, max_tokens: int, *, batch_size: int = 16) -> HeldOutScore:
    """Perplexity of the last checkpoint of ``run_dir`` on at most ``max_tokens`` test tokens per
    English source, pooled over the sources; computed once per checkpoint and kept in the run."""
    if max_tokens < 1:
        raise CocomixError(f"max_tokens must be >= 1, got {max_tokens}")
    run_dir = Path(run_dir)
    steps = checkpoint_steps(run_dir)
    if not steps:
        raise CocomixError(f"{run_dir} has no checkpoint to score; finish or resume the run first")
    corpus, digest = _test_text()
    key = {"step": steps[-1], "checkpoint_sha256": _checkpoint_digest(run_dir, steps[-1]),
           "max_tokens": max_tokens, "batch_size": batch_size, "corpus": TEST_CORPUS,
           "test_text_sha256": digest}
    cache = run_dir / CACHE_FILE
    stored = _read_cache(cache)
    if stored is not None and stored.get("key") == key:
        return HeldOutScore(ppl=float(stored["ppl"]), step=key["step"], cached=True)
    run = load_run(run_dir, step=key["step"])
    streams = corpus_perplexities(run.model, run.tokenizer, corpus, run.seq_len,
                                  max_tokens=max_tokens, batch_size=batch_size)
    ppl = pooled(streams).ppl
    cache.parent.mkdir(exist_ok=True)
    atomic_write_text(cache, json.dumps({"key": key, "ppl": ppl}, indent=2) + "\n")
    return HeldOutScore(ppl=ppl, step=key["step"], cached=False)
