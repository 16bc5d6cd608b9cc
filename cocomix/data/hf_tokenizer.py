"""A Hugging Face tokenizer folder as the student's tokenizer (``tokenizer=hf``).

A student that learns from a Hugging Face teacher (``teacher.source=hf``) must read the teacher's
token ids, so it tokenizes with the teacher's own tokenizer: ``tokenizer.path`` names a folder
that ``transformers.AutoTokenizer`` loads (usually the teacher's folder), or a hub name. Only
fast (Rust) tokenizers are accepted: they are what every modern checkpoint ships, they encode
whole shards quickly, and their ``tokenizer.json`` identifies the vocabulary exactly.

``encode`` adds no special tokens (no BOS): shards put EOS between documents themselves, as for
every tokenizer here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocomix.cache_files import cache_key
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import CocomixError, TOKENIZERS, first_line

if TYPE_CHECKING:
    from cocomix.data.corpora import Corpus

WHAT = "a Hugging Face tokenizer (tokenizer.json or tokenizer_config.json)"


def is_hf_tokenizer_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def load_hf(source: Path | str) -> Any:
    """The fast tokenizer at ``source`` (a folder or a hub name), or one clear error."""
    from transformers import AutoTokenizer

    from cocomix.runtime.hub import offline_kwargs

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True, **offline_kwargs(source))
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = first_line(err)
        raise CocomixError(f"cannot load a tokenizer from {source} ({first}); tokenizer.path must name "
                           f"{WHAT}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise CocomixError(f"{source} holds a slow (Python) tokenizer only; tokenizer=hf needs a fast one "
                           f"(tokenizer.json): save it with a fast tokenizer class")
    return tokenizer


def plain_ids(tokenizer: Any, text: str) -> list[int]:
    """``text``'s ids under a ``transformers`` fast tokenizer, without special tokens (no BOS)."""
    return list(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)


class HFTokenizer(Tokenizer):
    """A ``transformers`` fast tokenizer; ``path`` is its folder (or hub name)."""

    def __init__(self, source: Path | str) -> None:
        self.path = Path(source)
        self.source = source
        self.hf = load_hf(source)
        self.vocab_size = len(self.hf)
        eos = self.hf.eos_token_id
        if eos is None:
            raise CocomixError(f"the tokenizer at {source} has no EOS token, which separates documents; "
                               f"use a tokenizer that defines eos_token")
        self.eos_id = int(eos)
        self.bos_id = int(self.hf.bos_token_id) if self.hf.bos_token_id is not None else self.eos_id
        self.pad_id = int(self.hf.pad_token_id) if self.hf.pad_token_id is not None else self.eos_id
        # The Rust tokenizer's serialised form holds the vocabulary, merges, normaliser and
        # pre-tokeniser: equal forms encode every text the same.
        self._fingerprint = cache_key("hf_tokenizer", self.hf.backend_tokenizer.to_str(),
                                      sorted(self.hf.get_added_vocab().items()))

    def encode(self, text: str) -> list[int]:
        return plain_ids(self.hf, text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # The backend directly: no warnings about documents longer than the model's context.
        return [list(e.ids) for e in self.hf.backend_tokenizer.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.hf.decode([int(i) for i in ids]))

    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"HFTokenizer({str(self.source)!r}, vocab_size={self.vocab_size})"


@dataclass
class HFTokenizerConfig:
    """Options of ``tokenizer=hf``."""

    path: str = ""
    """A folder with a Hugging Face fast tokenizer (usually the teacher's folder), or a hub name."""

    @property
    def vocab_size(self) -> int:
        """Read by ``--dry-run`` to size the model: the tokenizer is loaded (no weights)."""
        return _vocab_size(self.path)


@functools.lru_cache(maxsize=16)
def _vocab_size(spec: str) -> int:
    # Loaded once per process: every planned run's preflight and parameter count ask.
    return HFTokenizer(resolve_tokenizer(spec)).vocab_size


def resolve_tokenizer(spec: str) -> Path | str:
    """``tokenizer.path`` as a tokenizer folder, or a hub name that can be had now."""
    from cocomix.runtime.hub import local_folder, require_source

    folder = local_folder(spec)
    if folder is None:
        return require_source(spec, "tokenizer.path", WHAT)
    if not is_hf_tokenizer_dir(folder):
        raise CocomixError(f"tokenizer.path={spec} is a folder without tokenizer.json or tokenizer_config.json, "
                           f"so not {WHAT}; point it at the teacher's folder")
    return folder


@TOKENIZERS.register("hf", HFTokenizerConfig)
def build_hf_tokenizer(config: HFTokenizerConfig, *, corpus: Corpus | None = None,
                       cache_dir: Path | None = None) -> Tokenizer:
    """The tokenizer at ``tokenizer.path``; nothing is trained, so ``corpus`` and ``cache_dir`` are unused."""
    return HFTokenizer(resolve_tokenizer(config.path))


__all__ = ["HFTokenizer", "HFTokenizerConfig", "is_hf_tokenizer_dir", "load_hf", "plain_ids"]
