"""Held-out perplexity on token streams: per pd_english source and on pystdlib.

A held-out split is tokenized the way shards are (each document followed by EOS, concatenated)
and cut into non-overlapping windows of the model's *training* length ``L``: window ``i`` feeds
tokens ``[iL, iL + L)`` and predicts ``[iL + 1, iL + L + 1)``, so every token after the first is
predicted exactly once with between 1 and ``L`` tokens of context, as during training and in
the paper's OWT evaluation (brief §4.1: non-overlapping 1024-token blocks). The reported number
is the mean NLL over all predicted tokens, then ``exp``. The stream is capped at ``max_tokens``
predicted tokens (a prefix: the documents come in the corpus's fixed order), so a number is only
comparable to another computed with the same cap and tokenizer.

Bits per byte divides the summed NLL (in bits) by the UTF-8 bytes of the predicted text, which
makes models with different tokenizers comparable (perplexity per token is not). The byte count
is the decoded text of the predicted tokens; SentencePiece's dummy prefix can add one space per
document, a difference below 0.1% here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cocomix.data.corpora import Corpus, Document
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CocomixError
from cocomix.types import ConceptLM


@dataclass(frozen=True)
class PerplexityResult:
    nll: float
    """Mean negative log-likelihood per predicted token (nats)."""
    ppl: float
    bits_per_byte: float
    tokens: int
    """Predicted tokens the mean is over."""
    bytes: int = 0
    """UTF-8 bytes of the predicted text (0 when no tokenizer was given)."""

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def token_stream(tokenizer: Tokenizer, documents: Iterable[Document], max_tokens: int | None = None) -> np.ndarray:
    """Documents encoded and joined with EOS after each (the shard layout), as int64.

    Stops once the stream holds ``max_tokens + 1`` tokens (enough to predict ``max_tokens``).
    """
    parts: list[np.ndarray] = []
    total = 0
    for doc in documents:
        ids = tokenizer.encode(doc.text)
        parts.append(np.asarray(ids + [tokenizer.eos_id], dtype=np.int64))
        total += len(ids) + 1
        if max_tokens is not None and total > max_tokens:
            break
    if not parts:
        return np.zeros(0, dtype=np.int64)
    stream = np.concatenate(parts)
    return stream if max_tokens is None else stream[: max_tokens + 1]


@torch.no_grad()
def stream_perplexity(
    model: ConceptLM,
    stream: np.ndarray,
    seq_len: int,
    *,
    tokenizer: Tokenizer | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    desc: str = "perplexity",
) -> PerplexityResult:
    """Perplexity of ``stream`` in non-overlapping windows of ``seq_len`` (see module doc).

    ``tokenizer`` (optional) decodes the predicted tokens for bits per byte (NaN without it).
    """
    if stream.size < 2:
        raise CocomixError(f"{desc}: the token stream has {stream.size} tokens; need at least 2")
    if seq_len < 1:
        raise CocomixError(f"seq_len must be >= 1, got {seq_len}")
    tokens = torch.as_tensor(np.asarray(stream, dtype=np.int64))
    n_pred = tokens.numel() - 1
    starts = list(range(0, n_pred, seq_len))
    total_nll = 0.0
    # Full windows batch together; the last, shorter one (if any) runs on its own.
    full = [s for s in starts if s + seq_len <= n_pred]
    tail = [s for s in starts if s + seq_len > n_pred]
    groups = [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [[s] for s in tail]
    for group in tqdm(groups, desc=desc, unit="batch", disable=None, leave=False):
        length = min(seq_len, n_pred - group[0])
        inputs = torch.stack([tokens[s : s + length] for s in group]).to(device)
        targets = torch.stack([tokens[s + 1 : s + 1 + length] for s in group]).to(device)
        logits = model.forward_lm(inputs).logits.float()
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
        total_nll += float(nll.double())
    mean = total_nll / n_pred
    n_bytes = 0
    if tokenizer is not None:
        n_bytes = len(tokenizer.decode(tokens[1:].tolist()).encode("utf-8"))
    bpb = total_nll / math.log(2) / n_bytes if n_bytes else float("nan")
    return PerplexityResult(
        nll=mean, ppl=math.exp(mean), bits_per_byte=bpb, tokens=n_pred, bytes=n_bytes
    )


def corpus_perplexities(
    model: ConceptLM,
    tokenizer: Tokenizer,
    corpus: Corpus,
    seq_len: int,
    *,
    split: str = "test",
    by_source: bool = True,
    max_tokens: int | None = 20_000,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, PerplexityResult]:
    """``{"<corpus>/<source>": result, ...}`` per source (``by_source``), else ``{"<corpus>": ...}``.

    ``max_tokens`` caps each stream (per source when ``by_source``).
    """
    corpus.check_split(split)
    documents = list(corpus.documents(split))
    if not documents:
        raise CocomixError(f"corpus {corpus.name!r} has no documents in split {split!r}")
    if by_source:
        sources = list(dict.fromkeys(doc.source for doc in documents))
        groups = {f"{corpus.name}/{s}": [d for d in documents if d.source == s] for s in sources}
    else:
        groups = {corpus.name: documents}
    results = {}
    for name, docs in groups.items():
        stream = token_stream(tokenizer, docs, max_tokens)
        results[name] = stream_perplexity(
            model, stream, seq_len, tokenizer=tokenizer, batch_size=batch_size, device=device,
            desc=f"ppl {name}",
        )
    return results


def pooled(results: dict[str, PerplexityResult]) -> PerplexityResult:
    """Token-weighted pool of several results (the "all sources" row)."""
    tokens = sum(r.tokens for r in results.values())
    if tokens == 0:
        raise CocomixError("nothing to pool: no predicted tokens")
    total_nll = sum(r.nll * r.tokens for r in results.values())
    n_bytes = sum(r.bytes for r in results.values())
    bpb = total_nll / math.log(2) / n_bytes if n_bytes else float("nan")
    nll = total_nll / tokens
    return PerplexityResult(
        nll=nll, ppl=math.exp(nll), bits_per_byte=bpb, tokens=tokens, bytes=n_bytes
    )
