"""SentencePiece training (cached, deterministic, lossless), loading and the artifact helpers."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cocomix.cache_files import atomic_dir, atomic_write_text, cache_key
from cocomix.data.tokenizer_loading import load_tokenizer
from cocomix.data.tokenizers import (
    SentencePieceConfig,
    train_sentencepiece,
    training_sentences,
)
from cocomix.registry import TOKENIZERS, CocomixError

WORDS = (
    "the of and to in is was he that it for on with as his they at be this from have or by one "
    "had not but what all were when we there can an your which their said if do will each about "
    "how up out them then she many some so these would other into has more her two like him see "
    "time could no make than first been its who now people made over did down only way find use"
).split()


@dataclass(frozen=True)
class Doc:
    text: str
    source: str


class ToyCorpus:
    """Stand-in for cocomix.data.corpora.Corpus: seeded prose and code, in memory."""

    name = "toy"

    def __init__(self, n_docs: int = 60, seed: int = 0) -> None:
        rng = random.Random(seed)
        self._docs: dict[str, list[Doc]] = {"train": [], "valid": []}
        for split, n in (("train", n_docs), ("valid", 4)):
            for i in range(n):
                if i % 4 == 3:
                    body = "\n".join(
                        f"def f{j}(x):\n    return x + {j}\n" for j in range(rng.randint(2, 6))
                    )
                    self._docs[split].append(Doc(body, "code"))
                else:
                    sents = (
                        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))).capitalize()
                        + "."
                        for _ in range(rng.randint(5, 30))
                    )
                    self._docs[split].append(Doc("\n".join(sents), "prose"))
        self._seed = seed

    def splits(self) -> tuple[str, ...]:
        return ("train", "valid")

    def documents(self, split: str) -> Iterator[Doc]:
        return iter(self._docs[split])

    def sources(self) -> tuple[str, ...]:
        return ("code", "prose")

    def fingerprint(self) -> str:
        return cache_key("toy", len(self._docs["train"]), self._seed)


CFG = SentencePieceConfig(vocab_size=400)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("cache")
    return TOKENIZERS.build("sentencepiece", CFG, corpus=ToyCorpus(), cache_dir=cache), cache


def test_trained_tokenizer_ids_and_cache_path(trained) -> None:  # type: ignore[no-untyped-def]
    tok, cache = trained
    assert tok.vocab_size == 400
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3)
    assert tok.path.parent.parent == cache / "tokenizers"
    assert tok.path.parent.name.startswith("sentencepiece-") and tok.path.name == "spm.model"
    assert len(tok.fingerprint()) == 16 and int(tok.fingerprint(), 16) >= 0


@pytest.mark.parametrize(
    "text",
    [
        "The time of people.",
        "  lead\n\n\tx  y\n",
        "def f(x):\n    return x\n",
        " é 中文 😀 \r\n",
        "",
        "\n",
    ],
)
def test_round_trip_is_lossless(trained, text: str) -> None:  # type: ignore[no-untyped-def]
    tok, _ = trained
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.eos_id not in ids and tok.bos_id not in ids
    assert tok.decode(ids) == text


def test_encode_batch_matches_encode(trained) -> None:  # type: ignore[no-untyped-def]
    tok, _ = trained
    texts = [d.text for d in ToyCorpus().documents("valid")]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_cache_reused_without_retraining(trained, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    tok, cache = trained
    mtime = os.stat(tok.path).st_mtime_ns
    # DEBUG: a reuse is not worth a console line (only builds are), but it is logged.
    with caplog.at_level(logging.DEBUG, logger="cocomix.data.tokenizers"):
        again = TOKENIZERS.build("sentencepiece", CFG, corpus=ToyCorpus(), cache_dir=cache)
    assert again.path == tok.path and os.stat(tok.path).st_mtime_ns == mtime
    assert "tokenizer: reusing" in caplog.text
    other = TOKENIZERS.build(
        "sentencepiece", SentencePieceConfig(vocab_size=380), corpus=ToyCorpus(), cache_dir=cache
    )
    assert other.path != tok.path and other.vocab_size == 380
    assert not [p for p in (cache / "tokenizers").iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_training_is_deterministic(model_type: str) -> None:
    cfg = SentencePieceConfig(vocab_size=400, model_type=model_type, num_threads=2)
    models = [train_sentencepiece(training_sentences(ToyCorpus(), 10**6), cfg) for _ in range(2)]
    assert models[0] == models[1]


def test_same_inputs_give_same_fingerprint_in_another_cache(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tok, _ = trained
    other = TOKENIZERS.build("sentencepiece", CFG, corpus=ToyCorpus(), cache_dir=tmp_path)
    assert other.fingerprint() == tok.fingerprint()
    assert other.path.parent.name == tok.path.parent.name


def test_model_file_is_loaded_as_is(trained) -> None:  # type: ignore[no-untyped-def]
    tok, _ = trained
    loaded = TOKENIZERS.build(
        "sentencepiece",
        SentencePieceConfig(model_file=str(tok.path)),
        corpus=None,
        cache_dir=Path("/nonexistent"),
    )
    assert loaded.fingerprint() == tok.fingerprint()
    assert loaded.encode("the people") == tok.encode("the people")


def test_corrupt_or_missing_model_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model" * 20)
    with pytest.raises(CocomixError, match=str(bad)):
        load_tokenizer(bad)
    missing = tmp_path / "missing.model"
    with pytest.raises(CocomixError, match="does not exist"):
        TOKENIZERS.build(
            "sentencepiece",
            SentencePieceConfig(model_file=str(missing)),
            corpus=None,
            cache_dir=tmp_path,
        )


def test_user_errors(tmp_path: Path) -> None:
    with pytest.raises(CocomixError, match="needs a corpus"):
        TOKENIZERS.build("sentencepiece", CFG, corpus=None, cache_dir=tmp_path)
    with pytest.raises(CocomixError, match="model_type"):
        TOKENIZERS.build(
            "sentencepiece",
            SentencePieceConfig(model_type="wordpiece"),
            corpus=ToyCorpus(),
            cache_dir=tmp_path,
        )
    with pytest.raises(CocomixError, match="vocab_size"):
        TOKENIZERS.build(
            "sentencepiece",
            SentencePieceConfig(vocab_size=50_000),
            corpus=ToyCorpus(),
            cache_dir=tmp_path,
        )
    assert not (tmp_path / "tokenizers").exists() or not any((tmp_path / "tokenizers").iterdir())


def test_training_text_is_capped_and_spread_over_the_split() -> None:
    corpus = ToyCorpus(n_docs=200)
    total = sum(len(d.text) for d in corpus.documents("train"))
    cap = total // 5
    sentences = list(training_sentences(corpus, cap))
    assert sum(map(len, sentences)) <= cap
    assert sentences == list(training_sentences(corpus, cap))
    last_doc_lines = set(list(corpus.documents("train"))[-1].text.splitlines())
    spread = {s for s in sentences} & (
        last_doc_lines | set(list(corpus.documents("train"))[-2].text.splitlines())
    )
    assert spread, "documents near the end of the split are represented"
    assert all("\n" not in s and s.strip() for s in sentences)


def test_cache_key_is_canonical() -> None:
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key(CFG) == cache_key(SentencePieceConfig(vocab_size=400))
    assert cache_key(CFG) != cache_key(SentencePieceConfig(vocab_size=401))
    assert len(cache_key("x")) == 16
    with pytest.raises(TypeError):
        cache_key(object())


def test_atomic_dir_publishes_only_on_success(tmp_path: Path) -> None:
    final = tmp_path / "art"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(final) as tmp:
        atomic_write_text(tmp / "f.txt", "first")
    with atomic_dir(final) as tmp:  # someone else already published: theirs is kept
        atomic_write_text(tmp / "f.txt", "second")
    assert (final / "f.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["art"]
