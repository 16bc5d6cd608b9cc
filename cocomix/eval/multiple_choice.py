"""Multiple-choice JSONL scoring, the way lm-eval scores ``multiple_choice`` tasks zero-shot.

One item per line: ``{"context": str, "choices": [str, ...], "label": int}`` (``context`` may be
empty; extra keys are ignored). Each choice is scored as the continuation ``" " + choice`` after
the context (lm-eval's default ``target_delimiter``; with an empty context the choice alone,
conditioned on EOS), by the sum of its tokens' log-probabilities. Reported, as lm-eval does:

- ``acc``: arg-max of the summed log-probability is the label;
- ``acc_norm``: arg-max of log-probability / ``len(choice)`` in *characters* (lm-eval's
  ``acc_norm``, the paper's "Acc-n" for HellaSwag, brief §4.1);
- ``acc_bytes``: the same divided by the choice's UTF-8 byte length (lm-eval's ``acc_bytes``).

Minimal pairs fit the same format: ``{"context": "", "choices": [good, bad], "label": 0}``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cocomix.data.tokenizers import Tokenizer
from cocomix.eval.scoring import LogLikelihoodScorer
from cocomix.registry import CocomixError


@dataclass(frozen=True)
class MCItem:
    context: str
    choices: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class MCResult:
    acc: float
    acc_norm: float
    acc_bytes: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def parse_item(record: object, where: str) -> MCItem:
    """Validate one decoded JSON line; every problem names ``where`` (file:line)."""
    if not isinstance(record, dict):
        raise CocomixError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in ("context", "choices", "label") if k not in record]
    if missing:
        raise CocomixError(
            f"{where}: missing {', '.join(missing)}; each line needs "
            f'{{"context": str, "choices": [str, ...], "label": int}}'
        )
    context, choices, label = record["context"], record["choices"], record["label"]
    if not isinstance(context, str):
        raise CocomixError(f"{where}: context must be a string")
    if not isinstance(choices, list) or len(choices) < 2 or not all(
        isinstance(c, str) and c for c in choices
    ):
        raise CocomixError(f"{where}: choices must be a list of at least 2 non-empty strings")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(choices):
        raise CocomixError(f"{where}: label must be an integer in 0..{len(choices) - 1}, got {label!r}")
    return MCItem(context=context, choices=tuple(choices), label=label)


def load_mc_items(path: Path | str) -> list[MCItem]:
    path = Path(path)
    if not path.is_file():
        raise CocomixError(f"multiple-choice file {path} does not exist")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CocomixError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        items.append(parse_item(record, f"{path}:{number}"))
    if not items:
        raise CocomixError(f"multiple-choice file {path} holds no items")
    return items


def choice_pairs(item: MCItem) -> list[tuple[str, str]]:
    """``(context, continuation)`` per choice (lm-eval's target delimiter ``" "``)."""
    delimiter = " " if item.context else ""
    return [(item.context, delimiter + choice) for choice in item.choices]


def score_multiple_choice(
    scorer: LogLikelihoodScorer, tokenizer: Tokenizer, items: Sequence[MCItem], *, desc: str = "mc"
) -> MCResult:
    if not items:
        raise CocomixError("no multiple-choice items to score")
    pairs = [pair for item in items for pair in choice_pairs(item)]
    scores = scorer.score_text(tokenizer, pairs, desc=desc)
    hits = {"acc": 0, "acc_norm": 0, "acc_bytes": 0}
    offset = 0
    for item in items:
        lls = np.array([s.logprob for s in scores[offset : offset + len(item.choices)]])
        offset += len(item.choices)
        chars = np.array([len(c) for c in item.choices], dtype=float)
        n_bytes = np.array([len(c.encode("utf-8")) for c in item.choices], dtype=float)
        hits["acc"] += int(np.argmax(lls) == item.label)
        hits["acc_norm"] += int(np.argmax(lls / chars) == item.label)
        hits["acc_bytes"] += int(np.argmax(lls / n_bytes) == item.label)
    n = len(items)
    return MCResult(acc=hits["acc"] / n, acc_norm=hits["acc_norm"] / n,
                    acc_bytes=hits["acc_bytes"] / n, n=n)
