"""The log-likelihood engine: lm-eval's context/continuation split, batching, truncation."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.scoring import LogLikelihoodScorer, split_pair
from cocomix.models import CocoMixLM
from cocomix.registry import CocomixError


def test_split_pair_tokenizes_the_boundary_as_running_text(tokenizer: Tokenizer) -> None:
    ctx, cont = split_pair(tokenizer, "The ship sailed out of the ", "harbour")
    # The trailing space moved to the continuation: the pair encodes like the whole string.
    assert ctx + cont == tokenizer.encode("The ship sailed out of the harbour")
    assert tokenizer.decode(cont).strip() == "harbour"


def test_split_pair_uses_eos_for_an_empty_context(tokenizer: Tokenizer) -> None:
    ctx, cont = split_pair(tokenizer, "", "Call me Ishmael.")
    assert ctx == [tokenizer.eos_id] and cont == tokenizer.encode("Call me Ishmael.")


def test_scores_do_not_depend_on_batching_or_padding(
    tiny_lm: Callable[..., CocoMixLM], tokenizer: Tokenizer
) -> None:
    model = tiny_lm(mixer="interleave", num_concepts=16, concept_topk=4)
    pairs = [("It was the best of times,", " it was the worst of times."),
             ("Call me", " Ishmael."), ("", "Whale."), ("The", " end of the chapter and the book.")]
    one = LogLikelihoodScorer(model, max_len=32, batch_size=1, pad_id=tokenizer.eos_id)
    many = LogLikelihoodScorer(model, max_len=32, batch_size=4, pad_id=tokenizer.eos_id)
    a, b = one.score_text(tokenizer, pairs), many.score_text(tokenizer, pairs)
    for x, y in zip(a, b, strict=True):
        assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
        assert x.is_greedy == y.is_greedy and x.num_tokens == y.num_tokens


def test_score_equals_a_direct_forward(tiny_lm: Callable[..., CocoMixLM], tokenizer: Tokenizer) -> None:
    model = tiny_lm()
    ctx, cont = split_pair(tokenizer, "Call me", " Ishmael.")
    seq = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model.forward_lm(seq[:, :-1]).logits, -1)[0]
    expected = sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont))
    [score] = LogLikelihoodScorer(model, max_len=32).score_tokens([(ctx, cont)])
    assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_long_contexts_are_truncated_on_the_left(stub_lm: Callable[..., object]) -> None:
    model = stub_lm(50)
    scorer = LogLikelihoodScorer(model, max_len=8)  # type: ignore[arg-type]
    [score] = scorer.score_tokens([(list(range(1, 30)), [5, 6])])
    assert model.inputs[0].shape == (1, 8)  # type: ignore[attr-defined]
    assert model.inputs[0][0].tolist() == list(range(23, 30)) + [5]  # type: ignore[attr-defined]
    assert score.logprob == pytest.approx(-2 * math.log(50))


def test_greedy_flag_follows_the_argmax(stub_lm: Callable[..., object]) -> None:
    scorer = LogLikelihoodScorer(stub_lm(20, {7: 5.0}), max_len=16)  # type: ignore[arg-type]
    yes, no = scorer.score_tokens([([1, 2], [7, 7]), ([1, 2], [7, 8])])
    assert yes.is_greedy and not no.is_greedy


def test_bad_requests_are_named() -> None:
    with pytest.raises(CocomixError, match="empty continuation"):
        LogLikelihoodScorer(torch.nn.Identity(), max_len=4).score_tokens([([1], [])])  # type: ignore[arg-type]
