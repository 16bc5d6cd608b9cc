"""A Hugging Face teacher reads the student's token ids: the two tokenizers must be one.

Equal vocabulary sizes are not enough (two BPEs of one size give the same id to different
pieces), and the student may tokenize with another implementation of the teacher's tokenizer
(``gpt2_bpe`` is tiktoken over GPT-2's own files). So the check is behavioural: both encode a
probe text that exercises words, numbers, punctuation, whitespace runs and non-ASCII to the same
ids, and both have the same number of tokens.
"""

from __future__ import annotations

from pathlib import Path

from cocomix.data.hf_tokenizer import load_hf, plain_ids
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CocomixError
from cocomix.runtime.hf_teacher import HFCausalLMTeacher

PROBE = (
    "In 1861 the war began; by 1865, 620,000 soldiers had died.\n\n"
    "    def f(x):  return x**2  # indented code, tabs\tand  double  spaces\n"
    "Naïve café — “quotes”, ümlauts, 東京, emoji 🙂, and URLs like https://example.org/a?b=c.\n"
    "THE END. the end! The End?"
)


def check_same_tokenizer(source: Path | str, teacher_vocab: int, student: Tokenizer) -> None:
    """Refuse a student tokenizer that is not the teacher's (``teacher_vocab``: the rows of the
    teacher's embedding, which may be padded beyond its tokenizer)."""
    if student.vocab_size > teacher_vocab:
        raise CocomixError(f"the student's tokenizer ({student!r}) has {student.vocab_size} tokens, more than "
                           f"the teacher {source} ({teacher_vocab}); set tokenizer=hf tokenizer.path={source}")
    try:
        theirs = load_hf(source)
    except CocomixError:
        theirs = None
    if theirs is None:
        print(f"teacher: {source} holds no tokenizer, so only the vocabulary size of the student's "
              f"({student.vocab_size}) was checked against it")
    elif len(theirs) != student.vocab_size or student.encode(PROBE) != plain_ids(theirs, PROBE):
        raise CocomixError(
            f"the student's tokenizer ({student!r}) is not the teacher's ({source}: {len(theirs)} tokens; "
            f"they encode the same text differently); teacher and student must share one: set "
            f"tokenizer=hf tokenizer.path={source}"
        )


def check_student_tokenizer(source: Path | str, teacher: HFCausalLMTeacher, student: Tokenizer) -> None:
    """``check_same_tokenizer``, then restrict the teacher's logits to the student's vocabulary
    (padding rows beyond it are never predicted)."""
    check_same_tokenizer(source, teacher.shape.vocab_size, student)
    teacher.use_vocabulary(student.vocab_size)


__all__ = ["PROBE", "check_same_tokenizer", "check_student_tokenizer"]
