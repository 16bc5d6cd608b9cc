"""``latent_topics``: a synthetic corpus whose next word depends on a hidden, computable topic.

The positive control of the concept machinery (``study/positive_control``). Documents are
space-separated words ``w0 .. w<V-1>``, one per line; word ``w`` has class ``w mod K``. The first
``arity`` words of a document are uniform; after them the topic of the next word is the sum of
the classes of the last ``arity`` words mod K (``cocomix.concepts.latent_topics.topic_of``), and
the next word is drawn uniformly from that topic's ``topic_words`` words with probability
``p_topic``, else uniformly from all words. A topic's words hold the same number of words of
every class, so the next word's class is uniform whatever the topic: with ``arity >= 2`` no
single class says anything about a later topic, and the rule has no first-order footprint.

Everything is a pure function of the options: the topics' words from ``seed``, each split's
documents from ``seed`` and the split name, so the fingerprint is a hash of the options and the
generator's version. Pair it with ``tokenizer.model_type=word`` so each word is one token;
``tools/latent_topics_bounds.py`` prints the losses a perfect model would reach.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from cocomix.concepts.latent_topics import topic_of, word_symbol
from cocomix.cache_files import cache_key
from cocomix.data.corpora.base import Corpus, Document
from cocomix.registry import CORPORA, CocomixError

GENERATOR_VERSION = 2
"""Bump when the generator's output changes for the same options (it keys every cache)."""

SPLITS = ("train", "valid", "test")


@dataclass
class LatentTopicsConfig:
    """Options of the ``latent_topics`` corpus."""

    num_topics: int = 16
    """K: the number of topics, and of word classes."""
    arity: int = 1
    """How many of the last words fix the next word's topic (1: the current word's class; 2:
    the sum of two classes mod K, a rule with no first-order footprint)."""
    num_words: int = 1024
    """V, the vocabulary (a multiple of K)."""
    topic_words: int = 32
    """Words each topic draws from (a multiple of K: the same number from every class)."""
    p_topic: float = 0.5
    """Probability that a word comes from its topic (else it is uniform over all words). With
    V=1024 words in K=16 classes and p_topic=0.5, a word's class is worth 0.33 nats per word
    over the best bigram table the train split supports, and NTP must learn the 1024-to-16
    class map from that weak signal (``tools/latent_topics_bounds.py``)."""
    doc_min: int = 32
    doc_max: int = 128
    """Document length range (words, inclusive)."""
    train_tokens: int = 1_500_000
    valid_tokens: int = 60_000
    test_tokens: int = 60_000
    """Approximate words per split (each document's EOS comes on top)."""
    seed: int = 0


def _check(config: LatentTopicsConfig) -> None:
    positive = ("num_topics", "arity", "num_words", "topic_words", "doc_min", "train_tokens",
                "valid_tokens")
    for key in positive:
        if int(getattr(config, key)) < 1:
            raise CocomixError(f"data.{key}={getattr(config, key)} must be >= 1")
    if config.num_topics < 2:
        raise CocomixError(f"data.num_topics={config.num_topics} must be >= 2")
    k = config.num_topics
    if config.num_words % k or config.topic_words % k:
        raise CocomixError(
            f"data.num_words={config.num_words} and data.topic_words={config.topic_words} must be "
            f"multiples of data.num_topics={k} (every class equally represented)"
        )
    if config.topic_words > config.num_words:
        raise CocomixError(
            f"data.topic_words={config.topic_words} must be <= data.num_words={config.num_words}"
        )
    if config.doc_max < config.doc_min:
        raise CocomixError(f"data.doc_max={config.doc_max} must be >= data.doc_min={config.doc_min}")
    if config.doc_min <= config.arity:
        raise CocomixError(
            f"data.doc_min={config.doc_min} must be > data.arity={config.arity} (documents need "
            f"words after the ones that fix the first topic)"
        )
    if not 0.0 <= config.p_topic <= 1.0:
        raise CocomixError(f"data.p_topic={config.p_topic} must be in [0, 1]")
    if config.test_tokens < 0:
        raise CocomixError(f"data.test_tokens={config.test_tokens} must be >= 0")


def topic_support(config: LatentTopicsConfig) -> np.ndarray:
    """(K, topic_words) word ids of each topic: ``topic_words / K`` words of every class."""
    rng = np.random.default_rng([config.seed, 0])
    k, per_class = config.num_topics, config.topic_words // config.num_topics
    words_of_class = np.arange(config.num_words).reshape(-1, k).T  # row c: the words of class c
    return np.stack([
        np.concatenate([rng.choice(words_of_class[c], per_class, replace=False) for c in range(k)])
        for _ in range(k)
    ])


def _split_seed(config: LatentTopicsConfig, split: str) -> list[int]:
    digest = hashlib.sha256(split.encode()).digest()
    return [config.seed, 1, int.from_bytes(digest[:4], "big")]


def generate_documents(config: LatentTopicsConfig, split: str) -> Iterator[list[int]]:
    """Word ids per document of ``split``, deterministically."""
    support = topic_support(config)
    rng = np.random.default_rng(_split_seed(config, split))
    budget = {"train": config.train_tokens, "valid": config.valid_tokens, "test": config.test_tokens}[split]
    produced = 0
    while produced < budget:
        length = int(rng.integers(config.doc_min, config.doc_max + 1))
        uniform = rng.integers(0, config.num_words, length)
        from_topic = rng.random(length) < config.p_topic
        pick = rng.integers(0, config.topic_words, length)
        words = uniform[: config.arity].tolist()
        for t in range(config.arity, length):
            if from_topic[t]:
                words.append(int(support[topic_of(words[-config.arity :], config.num_topics), pick[t]]))
            else:
                words.append(int(uniform[t]))
        produced += length
        yield words


def document_text(words: list[int]) -> str:
    return " ".join(word_symbol(w) for w in words)


@CORPORA.register("latent_topics", LatentTopicsConfig)
class LatentTopicsCorpus(Corpus):
    """Synthetic documents whose next word's topic is fixed by the last words (module docstring)."""

    name = "latent_topics"

    def __init__(self, config: LatentTopicsConfig | None = None) -> None:
        self.config = config or LatentTopicsConfig()
        _check(self.config)

    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.config.test_tokens > 0 else SPLITS[:2]

    def sources(self) -> tuple[str, ...]:
        return (self.name,)

    def documents(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        for words in generate_documents(self.config, split):
            yield Document(text=document_text(words), source=self.name)

    def fingerprint(self) -> str:
        return cache_key("latent_topics", GENERATOR_VERSION, asdict(self.config))


__all__ = ["LatentTopicsConfig", "LatentTopicsCorpus", "generate_documents", "topic_support"]
