"""Multiple-choice JSONL: validation with line numbers, acc / acc_norm / acc_bytes as lm-eval."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.multiple_choice import MCItem, load_mc_items, score_multiple_choice
from cocomix.eval.scoring import LogLikelihoodScorer, split_pair
from cocomix.registry import CocomixError

ITEMS = [
    MCItem("The whale swam", ("under the ship.", "into the bank vault."), 0),
    MCItem("She opened the", ("window.", "door."), 1),
    MCItem("", ("A good sentence.", "Sentence good a."), 0),
]


def favouring(tokenizer: Tokenizer, items: list[MCItem]) -> dict[int, float]:
    """Boost every token of the right continuations (and none only in wrong ones)."""
    right, wrong = set(), set()
    for item in items:
        for i, choice in enumerate(item.choices):
            delim = " " if item.context else ""
            ids = set(split_pair(tokenizer, item.context, delim + choice)[1])
            (right if i == item.label else wrong).update(ids)
    return {t: 6.0 for t in right - wrong}


def test_a_model_that_prefers_the_answers_gets_them_right(
    stub_lm: Callable[..., object], tokenizer: Tokenizer
) -> None:
    model = stub_lm(tokenizer.vocab_size, favouring(tokenizer, ITEMS))
    scorer = LogLikelihoodScorer(model, max_len=64)  # type: ignore[arg-type]
    result = score_multiple_choice(scorer, tokenizer, ITEMS)
    assert (result.acc, result.acc_norm, result.acc_bytes, result.n) == (1.0, 1.0, 1.0, 3)
    # ... and one made to prefer the wrong choices gets every item wrong.
    flipped = [MCItem(i.context, i.choices, 1 - i.label) for i in ITEMS]
    wrong = stub_lm(tokenizer.vocab_size, favouring(tokenizer, flipped))
    assert score_multiple_choice(LogLikelihoodScorer(wrong, max_len=64), tokenizer, ITEMS).acc == 0.0  # type: ignore[arg-type]


def test_acc_norm_divides_by_characters(stub_lm: Callable[..., object], tokenizer: Tokenizer) -> None:
    # Uniform model: log-prob = -n_tokens * log V, so the longer choice loses on acc, but per
    # character a long word-rich choice can win: acc and acc_norm disagree as in lm-eval.
    item = MCItem("He said", ("no.", "nevertheless, the whole matter was settled."), 1)
    result = score_multiple_choice(LogLikelihoodScorer(stub_lm(tokenizer.vocab_size), max_len=64),  # type: ignore[arg-type]
                                   tokenizer, [item])
    assert result.acc == 0.0 and result.acc_norm == 1.0


def test_jsonl_loading_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "task.jsonl"
    good.write_text("\n".join(json.dumps({"context": i.context, "choices": list(i.choices),
                                          "label": i.label, "id": n}) for n, i in enumerate(ITEMS)) + "\n\n")
    assert load_mc_items(good) == ITEMS
    bad = tmp_path / "bad.jsonl"
    for line, message in [
        ('{"context": "x", "choices": ["a", "b"]}', "bad.jsonl:2: missing label"),
        ('{"context": "x", "choices": ["a"], "label": 0}', "at least 2"),
        ('{"context": "x", "choices": ["a", "b"], "label": 2}', "0..1"),
        ("not json", "bad.jsonl:2: not valid JSON"),
    ]:
        bad.write_text(good.read_text().splitlines()[0] + "\n" + line + "\n")
        with pytest.raises(CocomixError, match=message):
            load_mc_items(bad)
    with pytest.raises(CocomixError, match="does not exist"):
        load_mc_items(tmp_path / "missing.jsonl")
