"""Reload a tokenizer from the path a run recorded: a SentencePiece ``.model`` file, or a folder
holding GPT-2's ``encoder.json`` + ``vocab.bpe`` (``gpt2_bpe``). Its own module so that the two
tokenizer modules do not import each other."""

from __future__ import annotations

from pathlib import Path

from cocomix.data.gpt2_bpe import GPT2BPETokenizer, is_gpt2_bpe_dir
from cocomix.data.tokenizers import SentencePieceTokenizer, Tokenizer


def load_tokenizer(path: Path | str, *, num_threads: int = 2) -> Tokenizer:
    """Load what ``Tokenizer.path`` points at: a SentencePiece ``.model`` file, or a folder
    holding GPT-2's ``encoder.json`` + ``vocab.bpe`` (``gpt2_bpe``)."""
    if is_gpt2_bpe_dir(Path(path)):
        return GPT2BPETokenizer(Path(path), num_threads=num_threads)
    return SentencePieceTokenizer(Path(path), num_threads=num_threads)
