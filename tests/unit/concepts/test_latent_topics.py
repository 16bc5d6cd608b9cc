"""The positive control's ground truth: the topic rule, its labels per position, and the source."""

from __future__ import annotations

import pytest
import torch

from cocomix.concepts.latent_topics import (
    LatentTopicsSource,
    LatentTopicsSourceConfig,
    latent_labels,
    topic_of,
    word_class,
    word_symbol,
)
from cocomix.concepts.sources import SourceContext
from cocomix.data.corpora.latent_topics import LatentTopicsConfig, LatentTopicsCorpus
from cocomix.registry import CocomixError

K = 8
EOS = 2
UNK = K  # the "unknown" label id
# A hand-made vocabulary: word w is token id 10 + w, so its class is (id - 10) % 8.
TOKEN_CLASS = torch.full((64,), -1, dtype=torch.long)
TOKEN_CLASS[10:42] = torch.arange(32) % K


def w(index: int) -> int:
    return 10 + index


def test_topic_is_the_sum_of_the_last_classes_mod_k() -> None:
    assert word_class(13, 8) == 5
    assert topic_of([3, 6], 8) == 1
    assert topic_of([13, 14], 8) == (5 + 6) % 8
    assert topic_of([5], 8) == 5


def test_labels_need_both_words_inside_the_window_and_the_document() -> None:
    tokens = torch.tensor([[w(3), w(6), w(9), EOS, w(1), w(2), w(15)]])
    labels = latent_labels(tokens, TOKEN_CLASS, K, arity=2)
    # position 0: the word before is outside the window; 3: EOS; 4: the word before is EOS.
    assert labels.tolist() == [[UNK, (3 + 6) % 8, (6 + 1) % 8, UNK, UNK, (1 + 2) % 8, (2 + 7) % 8]]


def test_arity_one_labels_each_word_with_its_class() -> None:
    tokens = torch.tensor([[w(3), EOS, w(12)], [w(7), w(8), w(9)]])
    labels = latent_labels(tokens, TOKEN_CLASS, K, arity=1)
    assert labels.tolist() == [[3, UNK, 4], [7, 0, 1]]


def test_a_window_shorter_than_the_arity_is_all_unknown() -> None:
    labels = latent_labels(torch.tensor([[w(1), w(2)]]), TOKEN_CLASS, K, arity=3)
    assert labels.tolist() == [[UNK, UNK]]


class WordTokenizer:
    """One id per word, like SentencePiece's word model on the synthetic corpus."""

    eos_id = EOS

    def __init__(self, num_words: int = 256) -> None:
        self.symbols = ["<unk>", "<s>", "</s>", "<pad>"] + [word_symbol(i) for i in range(num_words)]
        self.vocab_size = len(self.symbols)
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(s, 0) for s in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.symbols[i] if i else " ⁇ " for i in ids)


# K=8 and arity 2 (the sum of two classes) throughout; the corpus's own defaults differ.
RULE = {"num_topics": K, "arity": 2}
CORPUS = {**RULE, "num_words": 256, "topic_words": 16}


def source(labels: str = "true", num_words: int = 256, **corpus: int) -> LatentTopicsSource:
    context = SourceContext(teacher=None, sae=None, layer=0, tokenizer=WordTokenizer(num_words),
                            corpus=LatentTopicsCorpus(LatentTopicsConfig(**{**CORPUS, **corpus})))
    return LatentTopicsSource(LatentTopicsSourceConfig(labels=labels, **RULE), context)


def test_source_labels_generated_documents_with_the_topic_of_each_next_word() -> None:
    src = source()
    tokenizer = WordTokenizer()
    corpus = LatentTopicsCorpus(LatentTopicsConfig(**CORPUS, train_tokens=400))
    docs = [doc.text for doc in corpus.documents("train")]
    ids: list[int] = []
    for text in docs:
        ids += tokenizer.encode(text) + [EOS]
    labels = src.targets(torch.tensor([ids])).labels
    assert labels is not None and labels.shape == (1, len(ids), 1)
    position = 0
    for text in docs:
        words = [int(s[1:]) for s in text.split()]
        got = labels[0, position : position + len(words), 0].tolist()
        assert got == [UNK] + [topic_of(words[t - 1 : t + 1], K) for t in range(1, len(words))]
        position += len(words) + 1  # and the EOS
    assert src.num_concepts == K + 1


def test_random_labels_are_fixed_per_window_and_ignore_the_text() -> None:
    src = source(labels="random")
    tokens = torch.zeros((2, 64), dtype=torch.long)
    first = src.targets(tokens, sample_index=torch.tensor([4, 5])).labels
    again = src.targets(tokens, sample_index=torch.tensor([4, 5])).labels
    other = src.targets(tokens, sample_index=torch.tensor([6, 7])).labels
    assert first is not None and other is not None
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert int(first.min()) >= 0 and int(first.max()) <= K
    with pytest.raises(CocomixError, match="sample index"):
        src.targets(tokens)


def test_the_source_refuses_a_rule_other_than_the_corpus() -> None:
    context = SourceContext(teacher=None, sae=None, layer=0, tokenizer=WordTokenizer(),
                            corpus=LatentTopicsCorpus(LatentTopicsConfig(**{**CORPUS, "arity": 3})))
    with pytest.raises(CocomixError, match="concepts.arity=2 but data.arity=3"):
        LatentTopicsSource(LatentTopicsSourceConfig(**RULE), context)


def test_the_source_refuses_a_tokenizer_that_does_not_know_the_words() -> None:
    with pytest.raises(CocomixError, match="tokenizer.model_type=word"):
        source(num_words=100)


def test_the_source_refuses_another_corpus() -> None:
    class English:
        name = "pd_english"
        config = LatentTopicsConfig(**CORPUS)

    context = SourceContext(teacher=None, sae=None, layer=0, tokenizer=WordTokenizer(), corpus=English())
    with pytest.raises(CocomixError, match="set data=latent_topics"):
        LatentTopicsSource(LatentTopicsSourceConfig(), context)
