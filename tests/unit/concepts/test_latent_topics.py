"""The positive control's ground truth: the topic rule, its labels per position, and the source."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from cocomix.concepts.latent_topics import (
    LatentTopicsSource,
    LatentTopicsSourceConfig,
    key_symbol,
    latent_labels,
    topic_of,
    word_symbol,
)
from cocomix.concepts.sources import SourceContext
from cocomix.data.corpora.latent_topics import LatentTopicsConfig, LatentTopicsCorpus
from cocomix.registry import CocomixError

K = 8
EOS = 2
UNK = K  # the "unknown" label id
# Token ids of a hand-made vocabulary: keys k0..k7 are ids 10..17, words are 20 and up.
KEY_VALUE = torch.full((64,), -1, dtype=torch.long)
KEY_VALUE[10:18] = torch.arange(8)


def key(v: int) -> int:
    return 10 + v


def test_topic_is_the_sum_of_the_keys_mod_k() -> None:
    assert topic_of([3, 6], 8) == 1
    assert topic_of([5], 8) == 5
    assert topic_of([7, 7, 7], 8) == 5


def test_labels_follow_each_document_from_its_last_key_until_its_eos() -> None:
    # window: [tail of a doc whose header is not visible] EOS k3 k6 w w EOS k1 k1 w
    tokens = torch.tensor([[20, 21, EOS, key(3), key(6), 22, 23, EOS, key(1), key(1), 24]])
    labels = latent_labels(tokens, KEY_VALUE, EOS, K, key_arity=2)
    #                 20   21   EOS  k3   k6  w  w  EOS  k1   k1  w
    expected = [UNK, UNK, UNK, UNK, 1, 1, 1, UNK, UNK, 2, 2]
    assert labels.tolist() == [expected]


def test_a_window_that_starts_inside_a_header_stays_unknown_until_the_next_document() -> None:
    # The first key k6 belongs to a header whose first key is outside the window.
    tokens = torch.tensor([[key(6), 20, 21, EOS, key(2), key(2), 22]])
    labels = latent_labels(tokens, KEY_VALUE, EOS, K, key_arity=2)
    assert labels.tolist() == [[UNK, UNK, UNK, UNK, UNK, 4, 4]]


def test_rows_are_labelled_independently() -> None:
    tokens = torch.tensor([[EOS, key(1), key(2), 20], [EOS, key(5), 20, 21]])
    labels = latent_labels(tokens, KEY_VALUE, EOS, K, key_arity=1)
    assert labels.tolist() == [[UNK, 1, 1, 1], [UNK, 5, 5, 5]]


class WordTokenizer:
    """One id per symbol, like SentencePiece's word model on the synthetic corpus."""

    eos_id = EOS

    def __init__(self, num_keys: int = K) -> None:
        self.symbols = ["<unk>", "<s>", "</s>", "<pad>"] + [key_symbol(v) for v in range(num_keys)]
        self.symbols += [word_symbol(i) for i in range(32)]
        self.vocab_size = len(self.symbols)
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(s, 0) for s in text.split()]

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.symbols[i] if i else " ⁇ " for i in ids)


def source(labels: str = "true", num_keys: int = K, **corpus: int) -> LatentTopicsSource:
    context = SourceContext(teacher=None, sae=None, layer=0, tokenizer=WordTokenizer(num_keys),
                            corpus=LatentTopicsCorpus(LatentTopicsConfig(**corpus)))
    return LatentTopicsSource(LatentTopicsSourceConfig(labels=labels), context)


def encode_docs(tokenizer: WordTokenizer, texts: list[str]) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        ids += tokenizer.encode(text) + [EOS]
    return torch.tensor([ids])


def test_source_labels_generated_documents_with_their_topic() -> None:
    src = source()
    corpus = LatentTopicsCorpus(LatentTopicsConfig(train_tokens=300))
    texts = [doc.text for doc in corpus.documents("train")]
    tokens = encode_docs(WordTokenizer(), ["w1", *texts])  # a first doc without header
    labels = src.targets(tokens).labels
    assert labels is not None and labels.shape == (*tokens.shape, 1)
    position = 2  # after "w1 EOS"
    for text in texts:
        symbols = text.split()
        topic = topic_of([int(s[1:]) for s in symbols[:2]], K)
        got = labels[0, position : position + len(symbols), 0].tolist()
        assert got == [UNK] + [topic] * (len(symbols) - 1), text
        position += len(symbols) + 1
    assert src.num_concepts == K + 1


def test_random_labels_are_fixed_per_window_and_carry_no_topic() -> None:
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
                            corpus=LatentTopicsCorpus(LatentTopicsConfig(key_arity=3)))
    with pytest.raises(CocomixError, match="concepts.key_arity=2 but data.key_arity=3"):
        LatentTopicsSource(LatentTopicsSourceConfig(), context)


def test_the_source_refuses_a_tokenizer_that_does_not_know_the_keys() -> None:
    with pytest.raises(CocomixError, match="tokenizer.model_type=word"):
        source(num_keys=4)


def test_the_source_refuses_another_corpus() -> None:
    class English:
        name = "pd_english"
        config = replace(LatentTopicsConfig())

    context = SourceContext(teacher=None, sae=None, layer=0, tokenizer=WordTokenizer(), corpus=English())
    with pytest.raises(CocomixError, match="set data=latent_topics"):
        LatentTopicsSource(LatentTopicsSourceConfig(), context)
