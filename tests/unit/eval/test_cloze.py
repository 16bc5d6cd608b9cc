"""The LAMBADA-style cloze: deterministic items whose target was seen in the passage."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from cocomix.data.corpora import Document, build_corpus
from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.cloze import NARRATIVE_SOURCES, build_cloze_items, score_cloze
from cocomix.eval.scoring import LogLikelihoodScorer, split_pair
from cocomix.registry import CocomixError


def test_builder_is_deterministic_and_items_qualify() -> None:
    corpus = build_corpus("pd_english")
    first = build_cloze_items(corpus.documents("test"))
    second = build_cloze_items(build_corpus("pd_english").documents("test"))
    assert first == second and len(first) >= 100
    assert {item.source for item in first} == set(NARRATIVE_SOURCES)
    for item in first:
        assert item.target.isalpha() and not item.context.endswith(" ")
        assert re.search(rf"\b{item.target}\b", item.context, flags=re.IGNORECASE)
        assert 25 <= len((item.context + item.continuation).split()) <= 80
    # Round-robin over sources: the first three items come from three different sources.
    assert len({item.source for item in first[:3]}) == 3


def test_targets_not_seen_before_are_dropped() -> None:
    seen = ("The old sailor loved the sea more than anything. He had spent forty years upon "
            "the water and never once wished to live on land. Every morning he walked down to "
            "the harbour to look at the sea.")
    unseen = seen.replace("look at the sea.", "look at the boats.")
    [item] = build_cloze_items([Document(seen, "austen")])
    assert item.target == "sea" and item.context.endswith("look at the")
    with pytest.raises(CocomixError, match="no cloze item"):
        build_cloze_items([Document(unseen, "austen")])


def test_cap_and_scoring(stub_lm: Callable[..., object], tokenizer: Tokenizer) -> None:
    items = build_cloze_items(build_corpus("pd_english").documents("test"), max_items=6)
    assert len(items) == 6
    # A model that puts all its mass on the first item's target tokens gets that item right.
    _, target_ids = split_pair(tokenizer, items[0].context, items[0].continuation)
    model = stub_lm(tokenizer.vocab_size, {t: 50.0 for t in set(target_ids[:1])})
    result = score_cloze(LogLikelihoodScorer(model, max_len=128), tokenizer, items[:1])  # type: ignore[arg-type]
    assert result.n == 1 and result.mean_logprob < 0
    assert result.acc == (1.0 if len(set(target_ids)) == 1 else 0.0)
