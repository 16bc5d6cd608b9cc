"""The synthetic ``latent_topics`` corpus: deterministic, and every word follows the stated rule."""

from __future__ import annotations

import pytest

from cocomix.concepts.latent_topics import topic_of
from cocomix.data.corpora import build_corpus
from cocomix.data.corpora.latent_topics import (
    LatentTopicsConfig,
    LatentTopicsCorpus,
    TopicWorld,
    generate_documents,
)
from cocomix.registry import CocomixError

SMALL = LatentTopicsConfig(train_tokens=4000, valid_tokens=1000, test_tokens=1000)


def test_documents_are_a_pure_function_of_the_options() -> None:
    first = [d.text for d in LatentTopicsCorpus(SMALL).documents("train")]
    again = [d.text for d in LatentTopicsCorpus(SMALL).documents("train")]
    reseeded = [d.text for d in LatentTopicsCorpus(LatentTopicsConfig(**{**vars(SMALL), "seed": 1})).documents("train")]
    assert first == again and first != reseeded
    valid = [d.text for d in LatentTopicsCorpus(SMALL).documents("valid")]
    assert not set(valid) & set(first)  # splits draw different documents


def test_fingerprint_changes_with_any_option() -> None:
    base = LatentTopicsCorpus(SMALL).fingerprint()
    assert LatentTopicsCorpus(SMALL).fingerprint() == base
    assert LatentTopicsCorpus(LatentTopicsConfig(**{**vars(SMALL), "p_topic": 0.5})).fingerprint() != base


def test_every_word_comes_from_the_topic_or_the_background_chain() -> None:
    config = SMALL
    world = TopicWorld.build(config)
    from_topic = total = 0
    for keys, body in generate_documents(config, "train"):
        assert len(keys) == config.key_arity and all(0 <= k < config.num_topics for k in keys)
        assert config.doc_min <= len(body) <= config.doc_max
        topic = topic_of(keys, config.num_topics)
        previous = None
        for word in body:
            in_topic = word in world.topic_support[topic]
            follows = previous is not None and word in world.next_words[previous]
            assert in_topic or follows or previous is None
            from_topic += in_topic
            total += 1
            previous = word
    assert 0.5 < from_topic / total < 0.9  # p_topic = 0.6, plus chain words that are topic words


def test_split_sizes_follow_the_token_budgets() -> None:
    corpus = build_corpus("latent_topics", SMALL)
    symbols = sum(len(d.text.split()) for d in corpus.documents("valid"))
    assert 1000 <= symbols < 1000 + config_max_doc(SMALL)
    assert corpus.splits() == ("train", "valid", "test")
    assert LatentTopicsCorpus(LatentTopicsConfig(test_tokens=0)).splits() == ("train", "valid")


def config_max_doc(config: LatentTopicsConfig) -> int:
    return config.key_arity + config.doc_max


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("num_topics", 1, "num_topics=1 must be >= 2"), ("p_topic", 1.5, "p_topic=1.5 must be in"),
     ("doc_max", 5, "doc_max=5 must be >= data.doc_min"), ("topic_words", 999, "must be <= data.num_words")],
)
def test_bad_options_are_refused_with_the_key(option: str, value: float, message: str) -> None:
    with pytest.raises(CocomixError, match=message):
        LatentTopicsCorpus(LatentTopicsConfig(**{option: value}))
