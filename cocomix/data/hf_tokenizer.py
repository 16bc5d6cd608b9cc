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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocomix.cache_files import cache_key
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import TOKENIZERS, CocomixError

if TYPE_CHECKING:
    from cocomix.data.corpora import Corpus

WHAT = "a Hugging Face tokenizer (tokenizer.json or tokenizer_config.json)"


def is_hf_tokenizer_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def load_hf(source: Path | str) -> Any:
    """The fast tokenizer at ``source`` (a folder or a hub name), or one clear error."""
    from transformers import AutoTokenizer

    local = isinstance(source, Path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True, local_files_only=local)
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CocomixError(f"cannot load a tokenizer from {source} ({first}); tokenizer.path must name "
                           f"{WHAT}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise CocomixError(f"{source} holds a slow (Python) tokenizer only; tokenizer=hf needs a fast one "
                           f"(tokenizer.json): save it with a fast tokenizer class")
    return tokenizer


class HFTokenizer(Tokenizer):
    """A ``transformers`` fast tokenizer; ``path`` is its folder (or hub name)."""

    def __init__(self, source: Path | str) -> None:
        self.path = Path(source) if isinstance(source, Path) else Path(str(source))
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
        return list(self.hf.backend_tokenizer.encode(text, add_special_tokens=False).ids)

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
        """Read by ``--dry-run`` to size the model: the tokenizer is loaded (cheap, no weights)."""
        return HFTokenizer(resolve_tokenizer(self.path)).vocab_size


def resolve_tokenizer(spec: str) -> Path | str:
    from cocomix.runtime.hub import require_source

    folder = Path(spec).expanduser()
    if spec and folder.is_dir() and not is_hf_tokenizer_dir(folder):
        raise CocomixError(f"tokenizer.path={spec} is a folder without tokenizer.json or tokenizer_config.json, "
                           f"so not {WHAT}; point it at the teacher's folder")
    return require_source(spec, "tokenizer.path", WHAT, marker="tokenizer_config.json"
                          if (folder / "tokenizer_config.json").is_file() else "tokenizer.json")


@TOKENIZERS.register("hf", HFTokenizerConfig)
def build_hf_tokenizer(config: HFTokenizerConfig, *, corpus: Corpus | None = None,
                       cache_dir: Path | None = None) -> Tokenizer:
    """The tokenizer at ``tokenizer.path``; nothing is trained, so ``corpus`` and ``cache_dir`` are unused."""
    return HFTokenizer(resolve_tokenizer(config.path))


__all__ = ["HFTokenizer", "HFTokenizerConfig", "is_hf_tokenizer_dir", "load_hf"]
