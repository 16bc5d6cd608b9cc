"""Ground-truth concepts for the positive control: the latent topic of each next word.

The ``latent_topics`` corpus (``cocomix.data.corpora.latent_topics``) writes documents of
space-separated words ``w0 .. w<V-1>``. Word ``w`` has the class ``w mod K``. After the first
``arity`` words of a document, the topic that governs the next word is

    z_t = (class(x_{t-arity+1}) + ... + class(x_t)) mod K

and the next word is drawn from topic ``z_t``'s words with probability ``p_topic``, else
uniformly. ``z_t`` is a *function of the preceding tokens*, so a student can compute it. With
``arity = 1`` it is the current word's class: a lookup the student learns at once when told the
label, but that next-token prediction must piece together from a weak, noisy signal (each word
says a little about the next one). With ``arity = 2`` it is the sum of two classes modulo K:
each class alone says nothing about ``z_t``, so the rule has no first-order footprint and is
not learnt in our budgets even when the labels are given (``tools/latent_learnability.py``). A
concept source that hands the student the true ``z_t`` as its label tests what the CoCoMix
machinery (concept head, TopK compression, mixing; paper §2.2, Eq. 2-4) does with labels known
to be right and useful, learnable or not.

This module owns the grammar both sides share (symbol names, the class and topic rules) and the
registered ``latent_topics`` concept source. It imports torch only (the method layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cocomix.concepts.sources import ConceptBatch, ConceptSource, SourceContext
from cocomix.contracts import ConceptSourceContract
from cocomix.registry import CONCEPT_SOURCES, CocomixError

WORD_PREFIX = "w"
LABEL_MODES = ("true", "random")


def word_symbol(index: int) -> str:
    """The text of word ``index`` (``w0``, ``w1``, ...)."""
    return f"{WORD_PREFIX}{index}"


def word_class(index: int, num_topics: int) -> int:
    """The class of word ``index``: ``index mod K``."""
    return index % num_topics


def topic_of(words: Sequence[int], num_topics: int) -> int:
    """The topic the last ``arity`` words fix: the sum of their classes modulo K."""
    return sum(word_class(int(w), num_topics) for w in words) % num_topics


def latent_labels(tokens: Tensor, token_class: Tensor, num_topics: int, arity: int) -> Tensor:
    """(B, T) topic ids ``z_t`` the prefix ``tokens[:, :t+1]`` determines; ``num_topics`` means
    unknown.

    ``token_class`` maps a token id to its word's class (-1 for EOS and anything not a word).
    ``z_t`` is known when the ``arity`` tokens ending at ``t`` are all words of the window, i.e.
    not before the window's start and not across a document's EOS.
    """
    classes = token_class.to(tokens.device)[tokens]  # (B, T)
    batch, length = classes.shape
    unknown = torch.full((batch, length), num_topics, dtype=torch.long, device=tokens.device)
    if length < arity:
        return unknown
    windows = classes.unfold(1, arity, 1)  # (B, T - arity + 1, arity): tokens t-arity+1 .. t
    known = (windows >= 0).all(dim=-1)
    topics = torch.where(known, windows.clamp(min=0).sum(dim=-1) % num_topics, num_topics)
    unknown[:, arity - 1 :] = topics
    return unknown


@dataclass
class LatentTopicsSourceConfig:
    num_topics: int = 16
    """K; must equal the corpus's ``data.num_topics``."""
    arity: int = 1
    """Words whose classes fix the topic; must equal the corpus's ``data.arity``."""
    labels: str = "true"
    """``true``: the topic of each next word. ``random``: uniform labels drawn independently of
    the text (the control: same head, same mixing, same loss weight, no information)."""
    seed: int = 0
    """Seed of the ``random`` labels (a pure function of seed and sample index)."""


@CONCEPT_SOURCES.register("latent_topics", LatentTopicsSourceConfig)
class LatentTopicsSource(ConceptSource):
    """Labels = the true latent topic of a ``latent_topics`` document (one label per position).

    Needs no teacher and no SAE; the label space is the K topics plus one "unknown" id for
    positions whose ``arity`` words the window does not show.
    """

    contract = ConceptSourceContract(
        teacher=False, sae=False, teacher_flops=None,
        num_concepts=lambda config: int(config.num_topics) + 1,
    )

    def __init__(self, config: LatentTopicsSourceConfig, context: SourceContext) -> None:
        if config.num_topics < 2:
            raise CocomixError(f"concepts.num_topics={config.num_topics} must be >= 2")
        if config.arity < 1:
            raise CocomixError(f"concepts.arity={config.arity} must be >= 1")
        if config.labels not in LABEL_MODES:
            raise CocomixError(
                f"concepts.labels={config.labels!r}; choose one of {', '.join(LABEL_MODES)}"
            )
        tokenizer = context.tokenizer
        if tokenizer is None:
            raise CocomixError("concepts=latent_topics needs the run's tokenizer (run it via a recipe)")
        num_words = _check_same_rule(config, context.corpus)
        self.config = config
        self.num_concepts = config.num_topics + 1
        self.token_class = self._class_table(tokenizer, num_words, config.num_topics)

    @staticmethod
    def _class_table(tokenizer: Any, num_words: int, num_topics: int) -> Tensor:
        """Token id -> class (-1 elsewhere); every word must be exactly one known token."""
        table = torch.full((int(tokenizer.vocab_size),), -1, dtype=torch.long)
        for index in range(num_words):
            symbol = word_symbol(index)
            ids = tokenizer.encode(symbol)
            if len(ids) != 1 or tokenizer.decode(ids) != symbol:
                raise CocomixError(
                    f"the tokenizer does not read word {symbol!r} as one token (got {len(ids)}); "
                    f"concepts=latent_topics needs data=latent_topics with tokenizer.model_type=word"
                )
            table[ids[0]] = word_class(index, num_topics)
        return table

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        if self.config.labels == "random":
            return ConceptBatch(labels=self._random(tokens, sample_index))
        labels = latent_labels(tokens, self.token_class, self.config.num_topics, self.config.arity)
        return ConceptBatch(labels=labels.unsqueeze(-1))

    def _random(self, tokens: Tensor, sample_index: Tensor | None) -> Tensor:
        """Uniform labels, fixed per training window (a resumed run draws the same ones)."""
        if sample_index is None:
            raise CocomixError("concepts.labels=random needs each window's sample index")
        out = torch.empty((*tokens.shape, 1), dtype=torch.long)
        for row, index in enumerate(sample_index.tolist()):
            generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + int(index))
            out[row] = torch.randint(0, self.num_concepts, (tokens.size(1), 1), generator=generator)
        return out.to(tokens.device)


def _check_same_rule(config: LatentTopicsSourceConfig, corpus: Any) -> int:
    """The labels must follow the corpus's own rule (same K, same arity); returns its word count."""
    data = getattr(corpus, "config", None)
    if getattr(corpus, "name", None) != "latent_topics" or data is None:
        raise CocomixError(
            f"concepts=latent_topics labels the latent_topics corpus; this run reads "
            f"data={getattr(corpus, 'name', None)}: set data=latent_topics"
        )
    for key in ("num_topics", "arity"):
        if int(getattr(config, key)) != int(getattr(data, key)):
            raise CocomixError(
                f"concepts.{key}={getattr(config, key)} but data.{key}={getattr(data, key)}; "
                f"set both to the same value"
            )
    return int(data.num_words)


__all__ = [
    "LatentTopicsSource",
    "LatentTopicsSourceConfig",
    "latent_labels",
    "topic_of",
    "word_class",
    "word_symbol",
]
