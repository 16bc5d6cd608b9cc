"""``latent_topics``: a synthetic corpus whose next token depends on a hidden, computable topic.

The positive control of the concept machinery (``study/positive_control``). A seeded "world"
fixes K topic word distributions and a topic-free background chain; each document is

    k<a_1> .. k<a_r> w.. w.. w..          (one document per line, space-separated symbols)

with keys ``a_i`` uniform in [0, K), topic ``z = sum(a_i) mod K`` (``cocomix.concepts.
latent_topics.topic_of``), and a body of ``doc_min..doc_max`` words, each drawn from topic z's
distribution with probability ``p_topic``, else from the background chain given the previous
word. Topic distributions are Zipf weights over a random subset of ``topic_words`` words, so
topics overlap and one body word is weak evidence about z; the header fixes z exactly, but with
``key_arity >= 2`` only through the interaction of its keys.

Everything is a pure function of the options: the world from ``seed``, each split's documents
from ``seed`` and the split name, so the fingerprint is a hash of the options and the generator's
version. Pair it with ``tokenizer.model_type=word`` so each symbol is one token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from cocomix.concepts.latent_topics import key_symbol, topic_of, word_symbol
from cocomix.data.artifacts import cache_key
from cocomix.data.corpora.base import Corpus, Document
from cocomix.registry import CORPORA, CocomixError

GENERATOR_VERSION = 1
"""Bump when the generator's output changes for the same options (it keys every cache)."""

SPLITS = ("train", "valid", "test")


@dataclass
class LatentTopicsConfig:
    """Options of the ``latent_topics`` corpus."""

    num_topics: int = 8
    """K, the number of topics (and of distinct key symbols)."""
    key_arity: int = 2
    """Keys per header; the topic is their sum mod K (1: the key names the topic outright)."""
    num_words: int = 256
    """Body vocabulary."""
    topic_words: int = 24
    """Words each topic draws from (a random subset per topic, Zipf-weighted)."""
    p_topic: float = 0.6
    """Probability that a body word comes from the topic (else from the background chain)."""
    successors: int = 6
    """Background chain: the successors each word can have (Zipf-weighted)."""
    doc_min: int = 4
    doc_max: int = 12
    """Body length range (words, inclusive). Short documents keep the header rule valuable:
    over a document, knowing the topic from the start is worth at most log K nats more than
    inferring it from the words (``tools/latent_topics_bounds.py``)."""
    train_tokens: int = 1_500_000
    valid_tokens: int = 60_000
    test_tokens: int = 60_000
    """Approximate symbols per split (headers and bodies; each document's EOS comes on top)."""
    seed: int = 0


def _check(config: LatentTopicsConfig) -> None:
    positive = ("num_topics", "key_arity", "num_words", "topic_words", "successors", "doc_min",
                "train_tokens", "valid_tokens")
    for key in positive:
        if int(getattr(config, key)) < 1:
            raise CocomixError(f"data.{key}={getattr(config, key)} must be >= 1")
    if config.num_topics < 2:
        raise CocomixError(f"data.num_topics={config.num_topics} must be >= 2")
    if config.topic_words > config.num_words or config.successors > config.num_words:
        raise CocomixError(
            f"data.topic_words={config.topic_words} and data.successors={config.successors} "
            f"must be <= data.num_words={config.num_words}"
        )
    if config.doc_max < config.doc_min:
        raise CocomixError(f"data.doc_max={config.doc_max} must be >= data.doc_min={config.doc_min}")
    if not 0.0 <= config.p_topic <= 1.0:
        raise CocomixError(f"data.p_topic={config.p_topic} must be in [0, 1]")
    if config.test_tokens < 0:
        raise CocomixError(f"data.test_tokens={config.test_tokens} must be >= 0")


def _zipf(n: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1)
    return weights / weights.sum()


@dataclass(frozen=True)
class TopicWorld:
    """The fixed generative tables: per-topic word distributions and the background chain."""

    topic_support: np.ndarray  # (K, topic_words) word ids
    topic_cdf: np.ndarray  # (topic_words,) shared Zipf CDF over each support
    next_words: np.ndarray  # (V, successors) word ids
    next_cdf: np.ndarray  # (successors,) shared Zipf CDF

    @staticmethod
    def build(config: LatentTopicsConfig) -> TopicWorld:
        rng = np.random.default_rng([config.seed, 0])
        support = np.stack([rng.choice(config.num_words, config.topic_words, replace=False)
                            for _ in range(config.num_topics)])
        successors = np.stack([rng.choice(config.num_words, config.successors, replace=False)
                               for _ in range(config.num_words)])
        return TopicWorld(support, np.cumsum(_zipf(config.topic_words)),
                          successors, np.cumsum(_zipf(config.successors)))


def _split_seed(config: LatentTopicsConfig, split: str) -> list[int]:
    digest = hashlib.sha256(split.encode()).digest()
    return [config.seed, 1, int.from_bytes(digest[:4], "big")]


def generate_documents(config: LatentTopicsConfig, split: str) -> Iterator[tuple[list[int], list[int]]]:
    """(header keys, body word ids) per document of ``split``, deterministically."""
    world = TopicWorld.build(config)
    rng = np.random.default_rng(_split_seed(config, split))
    budget = {"train": config.train_tokens, "valid": config.valid_tokens, "test": config.test_tokens}[split]
    produced = 0
    while produced < budget:
        keys = rng.integers(0, config.num_topics, config.key_arity)
        topic = topic_of(keys.tolist(), config.num_topics)
        length = int(rng.integers(config.doc_min, config.doc_max + 1))
        from_topic = rng.random(length) < config.p_topic
        topic_draw = np.searchsorted(world.topic_cdf, rng.random(length))
        next_draw = np.searchsorted(world.next_cdf, rng.random(length))
        word = int(rng.integers(0, config.num_words))  # the chain's state before the first word
        body = []
        for t in range(length):
            if from_topic[t]:
                word = int(world.topic_support[topic, topic_draw[t]])
            else:
                word = int(world.next_words[word, next_draw[t]])
            body.append(word)
        produced += config.key_arity + length
        yield keys.tolist(), body


def document_text(keys: list[int], body: list[int]) -> str:
    return " ".join([*(key_symbol(k) for k in keys), *(word_symbol(w) for w in body)])


@CORPORA.register("latent_topics", LatentTopicsConfig)
class LatentTopicsCorpus(Corpus):
    """Synthetic documents with a hidden topic fixed by a header of keys (module docstring)."""

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
        for keys, body in generate_documents(self.config, split):
            yield Document(text=document_text(keys, body), source=self.name)

    def fingerprint(self) -> str:
        return cache_key("latent_topics", GENERATOR_VERSION, asdict(self.config))


__all__ = ["LatentTopicsConfig", "LatentTopicsCorpus", "TopicWorld", "generate_documents"]
