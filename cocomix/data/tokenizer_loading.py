"""Reload a tokenizer from the path a run recorded: a SentencePiece ``.model`` file, a folder
holding GPT-2's ``encoder.json`` + ``vocab.bpe`` (``gpt2_bpe``), or a Hugging Face tokenizer
folder or hub name (``hf``). Its own module so that the tokenizer modules do not import each
other."""

from __future__ import annotations

from pathlib import Path

from cocomix.data.gpt2_bpe import GPT2BPETokenizer, is_gpt2_bpe_dir
from cocomix.data.hf_tokenizer import HFTokenizer, is_hf_tokenizer_dir
from cocomix.data.tokenizers import SentencePieceTokenizer, Tokenizer
from cocomix.runtime.hub import is_hub_name


def load_tokenizer(path: Path | str, *, num_threads: int = 2) -> Tokenizer:
    """Load what ``Tokenizer.path`` points at (see the module docstring)."""
    if is_gpt2_bpe_dir(Path(path)):
        return GPT2BPETokenizer(Path(path), num_threads=num_threads)
    if is_hf_tokenizer_dir(Path(path)):
        return HFTokenizer(Path(path))
    if not Path(path).exists() and is_hub_name(str(path)):
        return HFTokenizer(str(path))
    return SentencePieceTokenizer(Path(path), num_threads=num_threads)
