"""The synthetic ``latent_topics`` corpus: deterministic, and every word follows the stated rule."""

from __future__ import annotations

from collections import Counter

import pytest

from cocomix.concepts.latent_topics import topic_of, word_class
from cocomix.data.corpora import build_corpus
from cocomix.data.corpora.latent_topics import (
    LatentTopicsConfig,
    LatentTopicsCorpus,
    generate_documents,
    topic_support,
)
from cocomix.registry import CocomixError

# K=8 classes, topic = sum of the last two classes: the rule whose footprint the tests check.
SMALL = LatentTopicsConfig(num_topics=8, arity=2, num_words=256, topic_words=16, p_topic=0.8,
                           train_tokens=6000, valid_tokens=1000, test_tokens=1000)


def with_options(**options: object) -> LatentTopicsConfig:
    return LatentTopicsConfig(**{**vars(SMALL), **options})


def test_documents_are_a_pure_function_of_the_options() -> None:
    first = [d.text for d in LatentTopicsCorpus(SMALL).documents("train")]
    again = [d.text for d in LatentTopicsCorpus(SMALL).documents("train")]
    reseeded = [d.text for d in LatentTopicsCorpus(with_options(seed=1)).documents("train")]
    assert first == again and first != reseeded
    valid = [d.text for d in LatentTopicsCorpus(SMALL).documents("valid")]
    assert not set(valid) & set(first)  # splits draw different documents


def test_fingerprint_changes_with_any_option() -> None:
    base = LatentTopicsCorpus(SMALL).fingerprint()
    assert LatentTopicsCorpus(SMALL).fingerprint() == base
    assert LatentTopicsCorpus(with_options(p_topic=0.5)).fingerprint() != base


def test_each_topic_holds_every_class_equally() -> None:
    support = topic_support(SMALL)
    assert support.shape == (SMALL.num_topics, SMALL.topic_words)
    for words in support:
        assert Counter(word_class(int(w), SMALL.num_topics) for w in words) == Counter(
            {c: SMALL.topic_words // SMALL.num_topics for c in range(SMALL.num_topics)})


def test_words_come_from_their_topic_at_the_stated_rate() -> None:
    support = topic_support(SMALL)
    in_topic = total = 0
    for words in generate_documents(SMALL, "train"):
        assert SMALL.doc_min <= len(words) <= SMALL.doc_max
        for t in range(SMALL.arity, len(words)):
            in_topic += words[t] in support[topic_of(words[t - SMALL.arity : t], SMALL.num_topics)]
            total += 1
    # p_topic = 0.8, plus uniform words that land in the topic by chance (16 of 256).
    expected = SMALL.p_topic + (1 - SMALL.p_topic) * SMALL.topic_words / SMALL.num_words
    assert abs(in_topic / total - expected) < 0.03


def test_one_class_alone_does_not_predict_the_next_topic() -> None:
    """With arity 2 the topic after (a, b) is uniform given b's class: no first-order footprint."""
    counts: Counter[tuple[int, int]] = Counter()
    for words in generate_documents(with_options(train_tokens=60000), "train"):
        for t in range(2, len(words)):
            counts[(word_class(words[t - 1], 8), topic_of(words[t - 2 : t], 8))] += 1
    for last_class in range(8):
        row = [counts[(last_class, z)] for z in range(8)]
        assert max(row) / min(row) < 1.5, row


def test_split_sizes_follow_the_token_budgets() -> None:
    corpus = build_corpus("latent_topics", SMALL)
    words = sum(len(d.text.split()) for d in corpus.documents("valid"))
    assert 1000 <= words < 1000 + SMALL.doc_max
    assert corpus.splits() == ("train", "valid", "test")
    assert LatentTopicsCorpus(with_options(test_tokens=0)).splits() == ("train", "valid")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("num_topics", 1, "num_topics=1 must be >= 2"), ("p_topic", 1.5, "p_topic=1.5 must be in"),
     ("doc_max", 5, "doc_max=5 must be >= data.doc_min"), ("topic_words", 12, "multiples of"),
     ("doc_min", 2, "doc_min=2 must be > data.arity=2")],
)
def test_bad_options_are_refused_with_the_key(option: str, value: float, message: str) -> None:
    with pytest.raises(CocomixError, match=message):
        LatentTopicsCorpus(with_options(**{option: value}))
