"""Ground-truth concepts for the positive control: the latent topic of a synthetic document.

The ``latent_topics`` corpus (``cocomix.data.corpora.latent_topics``) writes documents of the form

    k<a_1> ... k<a_r>  w<i_1> w<i_2> ... w<i_n>

A header of ``r`` key symbols fixes the document's topic ``z = (a_1 + ... + a_r) mod K``; every
body word is then drawn from topic ``z``'s word distribution or from a topic-free background
chain. ``z`` is a *function of the preceding tokens* (the header), so a student can compute it,
but with ``r >= 2`` no single key says anything about ``z`` (each key is uniform and independent
of ``z``), so next-token prediction gets no first-order signal towards the rule that computes it:
it must find the interaction of the keys, or infer ``z`` slowly from body words. A concept
source that hands the student the true ``z`` as its label isolates what the CoCoMix machinery
(concept head, TopK compression, mixing; paper §2.2, Eq. 2-4) does with labels that are known to
be right and useful.

This module owns the grammar both sides share (symbol names, the topic rule) and the registered
``latent_topics`` concept source. It imports torch only (the method layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cocomix.concepts.sources import ConceptBatch, ConceptSource, SourceContext
from cocomix.registry import CONCEPT_SOURCES, CocomixError

KEY_PREFIX = "k"
WORD_PREFIX = "w"
LABEL_MODES = ("true", "random")


def key_symbol(value: int) -> str:
    """The text of key ``value`` (``k0``, ``k1``, ...)."""
    return f"{KEY_PREFIX}{value}"


def word_symbol(index: int) -> str:
    """The text of body word ``index`` (``w0``, ``w1``, ...)."""
    return f"{WORD_PREFIX}{index}"


def topic_of(keys: Sequence[int], num_topics: int) -> int:
    """The topic a header fixes: the sum of its key values modulo ``num_topics``."""
    return sum(int(k) for k in keys) % num_topics


def latent_labels(tokens: Tensor, key_value: Tensor, eos_id: int, num_topics: int,
                  key_arity: int) -> Tensor:
    """(B, T) topic ids the prefix ``tokens[:, :t+1]`` determines; ``num_topics`` = unknown.

    ``key_value`` maps a token id to its key value (-1 for non-keys). A document's topic is
    known from its last header key on, until the EOS that ends it. Positions whose header is not
    wholly inside the window (the window starts mid-document or mid-header) are unknown: the
    label must be computable from what the student sees.
    """
    batch, length = tokens.shape
    unknown = num_topics
    values = key_value.to(tokens.device)[tokens]  # (B, T), -1 for non-keys
    is_eos = tokens == eos_id
    labels = torch.full((batch, length), unknown, dtype=torch.long, device=tokens.device)
    topic = torch.full((batch,), unknown, dtype=torch.long, device=tokens.device)
    keys_seen = torch.zeros(batch, dtype=torch.long, device=tokens.device)
    key_sum = torch.zeros(batch, dtype=torch.long, device=tokens.device)
    # A window that does not start at a document boundary has no readable header until an EOS.
    at_doc_start = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    for t in range(length):  # T <= a few thousand; each step is a handful of (B,) ops
        value = values[:, t]
        in_header = at_doc_start & (value >= 0)
        key_sum = torch.where(in_header, key_sum + value.clamp(min=0), key_sum)
        keys_seen = torch.where(in_header, keys_seen + 1, keys_seen)
        complete = in_header & (keys_seen == key_arity)
        topic = torch.where(complete, key_sum % num_topics, topic)
        at_doc_start = at_doc_start & in_header & ~complete
        eos = is_eos[:, t]
        topic = torch.where(eos, torch.full_like(topic, unknown), topic)
        labels[:, t] = topic
        # After an EOS the next tokens are a new document's header.
        at_doc_start = at_doc_start | eos
        key_sum = torch.where(eos, torch.zeros_like(key_sum), key_sum)
        keys_seen = torch.where(eos, torch.zeros_like(keys_seen), keys_seen)
    return labels


@dataclass
class LatentTopicsSourceConfig:
    num_topics: int = 8
    """K; must equal the corpus's ``data.num_topics`` (recipes interpolate it)."""
    key_arity: int = 2
    """Keys per header; must equal the corpus's ``data.key_arity``."""
    labels: str = "true"
    """``true``: the document's topic. ``random``: uniform labels drawn independently of the text
    (the control: same head, same mixing, same loss weight, no information)."""
    seed: int = 0
    """Seed of the ``random`` labels (a pure function of seed and sample index)."""


@CONCEPT_SOURCES.register("latent_topics", LatentTopicsSourceConfig)
class LatentTopicsSource(ConceptSource):
    """Labels = the true latent topic of a ``latent_topics`` document (one label per position).

    Needs no teacher and no SAE; the label space is the K topics plus one "unknown" id for
    positions whose header the window does not show.
    """

    needs_teacher = False
    needs_sae = False
    teacher_flop_mode = None

    @classmethod
    def planned_num_concepts(cls, config: Any) -> int:
        return int(config.num_topics) + 1

    def __init__(self, config: LatentTopicsSourceConfig, context: SourceContext) -> None:
        if config.num_topics < 2:
            raise CocomixError(f"concepts.num_topics={config.num_topics} must be >= 2")
        if config.key_arity < 1:
            raise CocomixError(f"concepts.key_arity={config.key_arity} must be >= 1")
        if config.labels not in LABEL_MODES:
            raise CocomixError(
                f"concepts.labels={config.labels!r}; choose one of {', '.join(LABEL_MODES)}"
            )
        tokenizer = context.tokenizer
        if tokenizer is None:
            raise CocomixError("concepts=latent_topics needs the run's tokenizer (run it via a recipe)")
        _check_same_rule(config, context.corpus)
        self.config = config
        self.num_concepts = config.num_topics + 1
        self.eos_id = int(tokenizer.eos_id)
        self.key_value = self._key_table(tokenizer, config.num_topics)

    @staticmethod
    def _key_table(tokenizer: Any, num_topics: int) -> Tensor:
        """Token id -> key value (-1 elsewhere); every key must be exactly one known token."""
        table = torch.full((int(tokenizer.vocab_size),), -1, dtype=torch.long)
        for value in range(num_topics):
            ids = tokenizer.encode(key_symbol(value))
            if len(ids) != 1 or tokenizer.decode(ids) != key_symbol(value):
                raise CocomixError(
                    f"the tokenizer does not read key symbol {key_symbol(value)!r} as one token "
                    f"(got {len(ids)}); concepts=latent_topics needs data=latent_topics with "
                    f"tokenizer.model_type=word"
                )
            table[ids[0]] = value
        return table

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        if self.config.labels == "random":
            return ConceptBatch(labels=self._random(tokens, sample_index))
        labels = latent_labels(tokens, self.key_value, self.eos_id, self.config.num_topics,
                               self.config.key_arity)
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


def _check_same_rule(config: LatentTopicsSourceConfig, corpus: Any) -> None:
    """The labels must follow the corpus's own rule: same K, same header length."""
    data = getattr(corpus, "config", None)
    if getattr(corpus, "name", None) != "latent_topics" or data is None:
        raise CocomixError(
            f"concepts=latent_topics labels the latent_topics corpus; this run reads "
            f"data={getattr(corpus, 'name', None)}: set data=latent_topics"
        )
    for key in ("num_topics", "key_arity"):
        if int(getattr(config, key)) != int(getattr(data, key)):
            raise CocomixError(
                f"concepts.{key}={getattr(config, key)} but data.{key}={getattr(data, key)}; "
                f"set both to the same value"
            )


__all__ = [
    "LatentTopicsSource",
    "LatentTopicsSourceConfig",
    "key_symbol",
    "latent_labels",
    "topic_of",
    "word_symbol",
]
