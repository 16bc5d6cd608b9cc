"""Token shards: content, caching, source filter, corrupt-file detection, empty splits."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cocomix.cache_files import cache_key
from cocomix.data.shards import META_FILE, TOKENS_FILE, TokenShard, build_shard
from cocomix.data.tokenizers import SentencePieceConfig, Tokenizer
from cocomix.registry import TOKENIZERS, CocomixError


@dataclass(frozen=True)
class Doc:
    text: str
    source: str


class ListCorpus:
    """Stand-in for cocomix.data.corpora.Corpus over fixed lists of documents."""

    name = "listc"

    def __init__(self, docs: dict[str, list[Doc]]) -> None:
        self._docs = docs

    def splits(self) -> tuple[str, ...]:
        return tuple(self._docs)

    def documents(self, split: str) -> Iterator[Doc]:
        return iter(self._docs[split])

    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({d.source for docs in self._docs.values() for d in docs} | {"x"}))

    def fingerprint(self) -> str:
        return cache_key([[d.text, d.source] for s in sorted(self._docs) for d in self._docs[s]])


class CharTokenizer(Tokenizer):
    """One token per character (id = code point + 4); counts encode_batch calls."""

    def __init__(self, vocab_size: int = 1000) -> None:
        self.path = Path("/dev/null")
        self.vocab_size, self.bos_id, self.eos_id, self.pad_id = vocab_size, 1, 2, 3
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        return [min(ord(c) + 4, self.vocab_size - 1) for c in text]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        self.calls += 1
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i - 4) for i in ids)

    def fingerprint(self) -> str:
        return cache_key("char", self.vocab_size)


DOCS = {
    "train": [Doc("hello world", "a"), Doc("second doc", "b"), Doc("third", "a")],
    "valid": [Doc("held out", "a")],
    "empty": [Doc("", "a")],
}


def test_shard_content_and_meta(tmp_path: Path) -> None:
    tok = CharTokenizer()
    shard = build_shard(ListCorpus(DOCS), tok, "train", tmp_path)
    expected = []
    for d in DOCS["train"]:
        expected += tok.encode(d.text) + [tok.eos_id]
    assert shard.tokens.dtype == np.uint16 and shard.n_tokens == len(expected)
    assert shard.tokens.tolist() == expected
    assert not shard.tokens.flags.writeable
    m = shard.meta
    assert (m.n_documents, m.split, m.source, m.dtype) == (3, "train", None, "uint16")
    assert (
        m.corpus_fingerprint == ListCorpus(DOCS).fingerprint()
        and m.tokenizer_fingerprint == tok.fingerprint()
    )
    assert shard.directory.parent == tmp_path / "shards" and shard.directory.name.startswith(
        "listc-train-"
    )
    assert json.loads((shard.directory / META_FILE).read_text())["n_tokens"] == len(expected)


def test_shard_is_cached(tmp_path: Path) -> None:
    tok = CharTokenizer()
    first = build_shard(ListCorpus(DOCS), tok, "train", tmp_path)
    mtime = os.stat(first.directory / TOKENS_FILE).st_mtime_ns
    calls = tok.calls
    again = build_shard(ListCorpus(DOCS), tok, "train", tmp_path)
    assert tok.calls == calls and again.directory == first.directory
    assert os.stat(again.directory / TOKENS_FILE).st_mtime_ns == mtime
    # Another tokenizer or corpus content means another shard, never the stale one.
    other = build_shard(ListCorpus(DOCS), CharTokenizer(2000), "train", tmp_path)
    changed = dict(DOCS, train=DOCS["train"][:2])
    third = build_shard(ListCorpus(changed), tok, "train", tmp_path)
    assert len({first.directory, other.directory, third.directory}) == 3
    assert [p for p in (tmp_path / "shards").iterdir() if ".tmp-" in p.name] == []


def test_source_filter(tmp_path: Path) -> None:
    tok = CharTokenizer()
    shard = build_shard(ListCorpus(DOCS), tok, "train", tmp_path, source="a")
    assert shard.directory.name.startswith("listc-train-a-")
    assert tok.decode([t for t in shard.tokens.tolist() if t != tok.eos_id]) == "hello worldthird"
    assert (shard.meta.source, shard.meta.n_documents) == ("a", 2)
    with pytest.raises(CocomixError, match="no source 'zzz'"):
        build_shard(ListCorpus(DOCS), tok, "train", tmp_path, source="zzz")
    with pytest.raises(CocomixError, match="yields no tokens"):
        build_shard(ListCorpus(DOCS), tok, "train", tmp_path, source="x")


def test_empty_split_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(CocomixError, match="yields no tokens"):
        build_shard(ListCorpus(DOCS), CharTokenizer(), "empty", tmp_path)
    with pytest.raises(CocomixError, match="no split 'test'"):
        build_shard(ListCorpus(DOCS), CharTokenizer(), "test", tmp_path)
    assert list((tmp_path / "shards").iterdir()) == []


def test_truncated_shard_is_detected(tmp_path: Path) -> None:
    tok = CharTokenizer()
    shard = build_shard(ListCorpus(DOCS), tok, "train", tmp_path)
    path = shard.directory / TOKENS_FILE
    del shard
    with open(path, "r+b") as fh:
        fh.truncate(6)
    with pytest.raises(CocomixError, match=f"{path}.*truncated or corrupt.*delete"):
        TokenShard.open(path.parent)
    with pytest.raises(CocomixError, match="delete"):
        build_shard(ListCorpus(DOCS), tok, "train", tmp_path)
    (path.parent / META_FILE).write_text("{not json")
    with pytest.raises(CocomixError, match=f"{path.parent / META_FILE}.*corrupt"):
        TokenShard.open(path.parent)


def test_large_vocab_uses_uint32(tmp_path: Path) -> None:
    shard = build_shard(ListCorpus(DOCS), CharTokenizer(70_000), "valid", tmp_path)
    assert shard.tokens.dtype == np.uint32 and shard.meta.dtype == "uint32"


def test_sentencepiece_shard_decodes_back(tmp_path: Path) -> None:
    docs = {
        "train": [Doc(f"Line {i} of the people.\n    indented {i % 7}\n", "a") for i in range(200)],
        "valid": [Doc("The people of line seven.\n", "a")],
    }
    corpus = ListCorpus(docs)
    tok = TOKENIZERS.build(
        "sentencepiece", SentencePieceConfig(vocab_size=300), corpus=corpus, cache_dir=tmp_path
    )
    shard = build_shard(corpus, tok, "valid", tmp_path)
    ids = shard.tokens.tolist()
    assert ids[-1] == tok.eos_id and tok.decode(ids[:-1]) == docs["valid"][0].text
