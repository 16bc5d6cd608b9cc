"""A LAMBADA-style last-word cloze built deterministically from held-out narrative paragraphs.

LAMBADA (the paper's ``lambada_openai``, brief §4.1) asks for the last word of a passage whose
answer needs the broader context. Without the hub we build the same kind of item from the
held-out split of ``pd_english`` (narrative sources only: novels and the Brown corpus):

1. Split each document into paragraphs at blank lines; collapse runs of whitespace.
2. Keep the trailing sentences of a paragraph that fit in ``max_words`` words, requiring at least
   ``min_sentences`` sentences and ``min_words`` words, so there is context to use.
3. The target is the last word of the last sentence (letters only; the final punctuation is
   dropped, as in LAMBADA); keep the item only if that word (case-insensitive, whole word)
   appears earlier in the passage: the "seen in context" filter that makes the task about
   using context rather than guessing.
4. Interleave sources round-robin (in the corpus's order) and stop at ``max_items``.

Items depend only on the text and these options, never on a tokenizer or model, so every run
is scored on the same items. Scoring (``score_cloze``) follows lm-eval's lambada: the
continuation is ``" " + target``; accuracy counts items where greedy decoding reproduces all of
its tokens; the mean target log-probability is in nats; ``ppl = exp(-mean log-prob)``
(lm-eval's lambada perplexity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from cocomix.data.corpora import Document
from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.scoring import LogLikelihoodScorer
from cocomix.registry import CocomixError

NARRATIVE_SOURCES: tuple[str, ...] = ("austen", "moby_dick", "brown")
"""pd_english sources written as running narrative prose (Shakespeare is verse drama with speaker
tags, the Bible is verse-numbered, State of the Union addresses are speeches)."""

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+")
_LAST_WORD = re.compile(r"\s([A-Za-z]+)[.!?][\"'\u201d\u2019)]*$")


@dataclass(frozen=True)
class ClozeItem:
    context: str
    """The passage up to (not including) the space before the target word."""
    target: str
    source: str

    @property
    def continuation(self) -> str:
        return " " + self.target


@dataclass(frozen=True)
class ClozeResult:
    acc: float
    mean_logprob: float
    ppl: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s]


def passage_item(sentences: Sequence[str], source: str, *, min_words: int, max_words: int,
                 min_sentences: int) -> ClozeItem | None:
    """The item whose target ends ``sentences[-1]``, with as many preceding sentences as fit in
    ``max_words``; ``None`` when it does not qualify."""
    kept: list[str] = []
    words = 0
    for sentence in reversed(sentences):
        n = len(sentence.split())
        if words + n > max_words:
            break
        kept.insert(0, sentence)
        words += n
    if len(kept) < min_sentences or words < min_words:
        return None
    passage = " ".join(kept)
    match = _LAST_WORD.search(passage)
    if match is None:
        return None
    target = match.group(1)
    context = passage[: match.start()]
    if not re.search(rf"\b{re.escape(target)}\b", context, flags=re.IGNORECASE):
        return None
    return ClozeItem(context=context, target=target, source=source)


def document_items(doc: Document, *, min_words: int, max_words: int,
                   min_sentences: int) -> list[ClozeItem]:
    """Non-overlapping items of one document: each sentence end is a candidate target; after an
    item the next passage starts with the following sentence."""
    items = []
    for paragraph_group in re.split(r"\n\s*\n\s*\n", doc.text):  # never across section breaks
        sentences = _sentences(" ".join(paragraph_group.split()))
        start = 0
        for end in range(len(sentences)):
            item = passage_item(sentences[start : end + 1], doc.source, min_words=min_words,
                                max_words=max_words, min_sentences=min_sentences)
            if item is not None:
                items.append(item)
                start = end + 1
    return items


def build_cloze_items(
    documents: Iterable[Document],
    *,
    sources: Sequence[str] = NARRATIVE_SOURCES,
    max_items: int = 500,
    min_words: int = 25,
    max_words: int = 80,
    min_sentences: int = 2,
) -> list[ClozeItem]:
    """Deterministic cloze items from ``documents`` (see the module doc for the rules)."""
    if max_items < 1:
        raise CocomixError(f"max_items must be >= 1, got {max_items}")
    if not 0 < min_words <= max_words:
        raise CocomixError(f"need 0 < min_words <= max_words, got {min_words} and {max_words}")
    per_source: dict[str, list[ClozeItem]] = {s: [] for s in sources}
    for doc in documents:
        if doc.source in per_source:
            per_source[doc.source] += document_items(
                doc, min_words=min_words, max_words=max_words, min_sentences=min_sentences
            )
    items: list[ClozeItem] = []
    depth = max((len(v) for v in per_source.values()), default=0)
    for i in range(depth):
        for source in sources:
            if i < len(per_source[source]) and len(items) < max_items:
                items.append(per_source[source][i])
    if not items:
        raise CocomixError(
            f"no cloze item could be built from sources {', '.join(sources)}; check the split and "
            f"the source names"
        )
    return items


def score_cloze(
    scorer: LogLikelihoodScorer, tokenizer: Tokenizer, items: Sequence[ClozeItem]
) -> ClozeResult:
    """Greedy accuracy and mean target log-probability over ``items``."""
    if not items:
        raise CocomixError("no cloze items to score")
    scores = scorer.score_text(
        tokenizer, [(item.context, item.continuation) for item in items], desc="cloze"
    )
    acc = sum(s.is_greedy for s in scores) / len(scores)
    mean_lp = sum(s.logprob for s in scores) / len(scores)
    return ClozeResult(acc=acc, mean_logprob=mean_lp, ppl=math.exp(-mean_lp), n=len(scores))
