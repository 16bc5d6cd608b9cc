"""Held-out perplexity: non-overlapping windows, each token predicted once, exact arithmetic."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cocomix.data.corpora import Document
from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.perplexity import PerplexityResult, pooled, stream_perplexity, token_stream
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


def test_windows_do_not_overlap_and_cover_every_token_once(stub_lm: Callable[..., object]) -> None:
    model = stub_lm(30)
    stream = np.arange(1, 24) % 30  # 23 tokens -> 22 predicted; windows of 5: 4 full + 1 of 2
    result = stream_perplexity(model, stream, 5, batch_size=3)  # type: ignore[arg-type]
    fed = torch.cat([x.reshape(-1) for x in model.inputs])  # type: ignore[attr-defined]
    assert sorted(fed.tolist()) == sorted(stream[:-1].tolist())
    assert result.tokens == 22
    # Uniform logits: NLL is log V for every token.
    assert result.nll == pytest.approx(math.log(30)) and result.ppl == pytest.approx(30.0)


def test_matches_a_direct_computation(tiny_lm: Callable[..., CocoMixLM], tokenizer: Tokenizer) -> None:
    model = tiny_lm()
    docs = [Document("Call me Ishmael. Some years ago, never mind how long precisely.", "x"),
            Document("It was the best of times, it was the worst of times.", "x")]
    stream = token_stream(tokenizer, docs)
    assert stream.tolist().count(tokenizer.eos_id) == 2
    seq_len = 8
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(stream) - 1, seq_len):
            x = torch.tensor(stream[start : start + seq_len + 1])
            logits = model.forward_lm(x[None, :-1]).logits[0]
            total += float(F.cross_entropy(logits, x[1:], reduction="sum"))
    result = stream_perplexity(model, stream, seq_len, tokenizer=tokenizer, batch_size=4)
    assert result.nll == pytest.approx(total / (len(stream) - 1), rel=1e-5)
    text_bytes = len(tokenizer.decode(stream[1:].tolist()).encode())
    assert result.bits_per_byte == pytest.approx(total / math.log(2) / text_bytes, rel=1e-5)


def test_token_stream_cap_and_pooling(tokenizer: Tokenizer) -> None:
    docs = [Document("word " * 200, "x")] * 3
    assert token_stream(tokenizer, docs, max_tokens=50).size == 51
    a = PerplexityResult(nll=1.0, ppl=math.e, bits_per_byte=1.0, tokens=10, bytes=10)
    b = PerplexityResult(nll=2.0, ppl=math.e**2, bits_per_byte=1.0, tokens=30, bytes=60)
    p = pooled({"a": a, "b": b})
    assert p.tokens == 40 and p.nll == pytest.approx((10 + 60) / 40)
    assert p.bits_per_byte == pytest.approx(70 / math.log(2) / 70)


def test_too_short_stream_is_an_error(stub_lm: Callable[..., object]) -> None:
    with pytest.raises(CocomixError, match="at least 2"):
        stream_perplexity(stub_lm(5), np.array([1]), 4)  # type: ignore[arg-type]
