"""Token shards: one corpus split, tokenized once, stored as a flat memory-mapped array.

Documents are concatenated, each followed by EOS, into ``tokens.bin`` (uint16 while the
vocabulary fits, else uint32), beside ``meta.json`` that records what was tokenized with what.
A shard's directory name carries a key of the corpus and tokenizer fingerprints, the split and
the source filter, so a changed corpus or tokenizer builds a new shard instead of reusing a
stale one. Shards are written under ``atomic_dir`` and validated against their metadata when
opened, so a crash mid-build or a truncated copy is reported rather than trained on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from cocomix.cache_files import atomic_dir, atomic_write_text, cache_key
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CocomixError

if TYPE_CHECKING:
    from cocomix.data.corpora import Corpus, Document

log = logging.getLogger(__name__)

TOKENS_FILE = "tokens.bin"
META_FILE = "meta.json"
FORMAT_VERSION = 1

# Documents are encoded in batches of about this many characters: large enough for
# SentencePiece's threads to pay off, small enough to keep memory flat on big corpora.
_BATCH_CHARS = 1 << 21
_BATCH_DOCS = 1024


@dataclass(frozen=True)
class ShardMeta:
    """What ``meta.json`` records about a shard."""

    n_tokens: int
    dtype: str
    corpus: str
    corpus_fingerprint: str
    tokenizer_fingerprint: str
    split: str
    source: str | None
    n_documents: int
    vocab_size: int
    eos_id: int
    format_version: int = FORMAT_VERSION


def shard_dtype(vocab_size: int) -> np.dtype[np.unsignedinteger]:
    """The narrowest unsigned dtype that holds every id of the vocabulary."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class TokenShard:
    """A read-only view of a built shard: ``tokens`` (memmap), ``n_tokens`` and ``meta``."""

    def __init__(self, directory: Path, meta: ShardMeta, tokens: np.memmap) -> None:
        self.directory = directory
        self.meta = meta
        self.tokens = tokens
        self.n_tokens = meta.n_tokens

    @classmethod
    def open(cls, directory: Path | str) -> TokenShard:
        """Open a shard, checking that its token file matches its metadata."""
        directory = Path(directory)
        meta_path, tokens_path = directory / META_FILE, directory / TOKENS_FILE
        rebuild = f"delete {directory} to rebuild it"
        try:
            meta = ShardMeta(**json.loads(meta_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise CocomixError(f"token shard metadata {meta_path} is missing; {rebuild}") from None
        except (ValueError, TypeError) as err:
            raise CocomixError(
                f"token shard metadata {meta_path} is corrupt ({err}); {rebuild}"
            ) from None
        if meta.format_version != FORMAT_VERSION or meta.dtype not in ("uint16", "uint32"):
            raise CocomixError(
                f"token shard {directory} has format {meta.format_version}/{meta.dtype}, "
                f"this code reads {FORMAT_VERSION}/uint16|uint32; {rebuild}"
            )
        dtype = np.dtype(meta.dtype)
        expected = meta.n_tokens * dtype.itemsize
        actual = tokens_path.stat().st_size if tokens_path.is_file() else -1
        if actual != expected or meta.n_tokens <= 0:
            raise CocomixError(
                f"token shard file {tokens_path} is truncated or corrupt ({actual} bytes, "
                f"meta.json says {meta.n_tokens} tokens = {expected} bytes); {rebuild}"
            )
        tokens = np.memmap(tokens_path, dtype=dtype, mode="r", shape=(meta.n_tokens,))
        return cls(directory, meta, tokens)

    def __len__(self) -> int:
        return self.n_tokens

    def __repr__(self) -> str:
        where, split = str(self.directory), self.meta.split
        return f"TokenShard({where!r}, n_tokens={self.n_tokens}, split={split!r})"


def shard_dir(
    corpus: Corpus, tokenizer: Tokenizer, split: str, cache_dir: Path, source: str | None = None
) -> Path:
    """Where ``build_shard`` keeps the shard for these inputs."""
    key = cache_key(corpus.fingerprint(), tokenizer.fingerprint(), split, source)
    suffix = f"-{source}" if source else ""
    return Path(cache_dir) / "shards" / f"{corpus.name}-{split}{suffix}-{key}"


def _batches(documents: Iterator[Document]) -> Iterator[list[str]]:
    texts: list[str] = []
    n_chars = 0
    for doc in documents:
        texts.append(doc.text)
        n_chars += len(doc.text)
        if n_chars >= _BATCH_CHARS or len(texts) >= _BATCH_DOCS:
            yield texts
            texts, n_chars = [], 0
    if texts:
        yield texts


def build_shard(
    corpus: Corpus,
    tokenizer: Tokenizer,
    split: str,
    cache_dir: Path,
    *,
    source: str | None = None,
) -> TokenShard:
    """Tokenize ``split`` of ``corpus`` (only ``source``'s documents if given) into a shard.

    Reuses the cached shard when it exists; otherwise streams batches of documents through
    ``tokenizer.encode_batch`` to disk, so memory stays bounded by one batch.
    """
    if split not in corpus.splits():
        raise CocomixError(
            f"corpus {corpus.name!r} has no split {split!r}; it has {', '.join(corpus.splits())}"
        )
    if source is not None and source not in corpus.sources():
        raise CocomixError(
            f"corpus {corpus.name!r} has no source {source!r}; it has {', '.join(corpus.sources())}"
        )
    final = shard_dir(corpus, tokenizer, split, cache_dir, source)
    if final.exists():
        shard = TokenShard.open(final)
        if (shard.meta.corpus_fingerprint, shard.meta.tokenizer_fingerprint) != (
            corpus.fingerprint(),
            tokenizer.fingerprint(),
        ):
            raise CocomixError(
                f"token shard {final} was built from other inputs; delete it to rebuild"
            )
        log.debug("shard: reusing %s (%d tokens)", final, shard.n_tokens)
        return shard

    dtype = shard_dtype(tokenizer.vocab_size)
    eos = np.array([tokenizer.eos_id], dtype=dtype)
    what = f"{corpus.name}/{split}" + (f"/{source}" if source else "")
    log.info("shard: tokenizing %s into %s", what, final)
    n_tokens = n_documents = 0
    documents = (doc for doc in corpus.documents(split) if source is None or doc.source == source)
    with atomic_dir(final) as tmp:
        with (
            open(tmp / TOKENS_FILE, "wb") as out,
            tqdm(desc=f"tokenizing {what}", unit="doc", disable=None) as bar,
        ):
            for texts in _batches(documents):
                parts: list[np.ndarray] = []
                for ids in tokenizer.encode_batch(texts):
                    parts.append(np.asarray(ids, dtype=dtype))
                    parts.append(eos)
                block = np.concatenate(parts)
                block.tofile(out)
                n_tokens += int(block.size)
                n_documents += len(texts)
                bar.update(len(texts))
        # EOS alone is no text: a split of empty documents is as unusable as no documents.
        if n_tokens - n_documents == 0:
            raise CocomixError(
                f"{what} yields no tokens ({n_documents} documents); check the corpus files, "
                f"the split and the source filter"
            )
        meta = ShardMeta(
            n_tokens=n_tokens,
            dtype=dtype.name,
            corpus=corpus.name,
            corpus_fingerprint=corpus.fingerprint(),
            tokenizer_fingerprint=tokenizer.fingerprint(),
            split=split,
            source=source,
            n_documents=n_documents,
            vocab_size=tokenizer.vocab_size,
            eos_id=tokenizer.eos_id,
        )
        atomic_write_text(tmp / META_FILE, json.dumps(asdict(meta), indent=2) + "\n")
    log.info("shard: %s has %d tokens from %d documents", what, n_tokens, n_documents)
    return TokenShard.open(final)
