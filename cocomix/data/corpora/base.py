"""What every corpus is: documents with a source, in named splits, with a content fingerprint.

A corpus yields ``Document`` objects in a deterministic order, per split. Its ``fingerprint`` is
a short hash that changes exactly when the yielded text would change (content and options), so
tokenizers and token shards built from it can be cached under that key.
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocomix.registry import CORPORA, CocomixError


@dataclass(frozen=True)
class Document:
    """One natural unit of text (an address, a play, a file) and where it came from."""

    text: str
    source: str
    """Short source name (``sotu``, ``brown``, ...) or a file path."""


class Corpus(abc.ABC):
    """A named collection of documents split into ``train``, ``valid`` (and maybe ``test``)."""

    name: str

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The split names; always includes ``train`` and ``valid``."""

    @abc.abstractmethod
    def documents(self, split: str) -> Iterator[Document]:
        """The documents of ``split`` in a deterministic order."""

    @abc.abstractmethod
    def sources(self) -> tuple[str, ...]:
        """The ``Document.source`` values this corpus can yield."""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """16 hex characters that change iff the yielded text would change."""

    def check_split(self, split: str) -> None:
        """Raise the one error for a split this corpus does not have."""
        if split not in self.splits():
            raise CocomixError(
                f"corpus {self.name!r} has no split {split!r}; its splits: "
                f"{', '.join(self.splits())}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, splits={self.splits()})"


def build_corpus(name: str, config: Any = None) -> Corpus:
    """The registered corpus ``name`` with ``config`` (its default options when ``None``)."""
    return CORPORA.build(name, config)


def assets_dir() -> Path:
    """The shipped ``assets/`` folder, or ``$COCOMIX_ASSETS`` (e.g. a rebuilt full corpus)."""
    env = os.environ.get("COCOMIX_ASSETS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[3] / "assets"


def unit_interval(key: str, seed: int | str = 0) -> float:
    """A deterministic, well-mixed number in [0, 1) for ``key`` (splits with no global order)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_fractions(corpus: str, **fractions: float) -> None:
    """Held-out fractions must be in [0, 1) and leave something for ``train``."""
    for key, value in fractions.items():
        if not 0.0 <= value < 1.0:
            raise CocomixError(f"data.{key} of corpus {corpus!r} must be in [0, 1), got {value}")
    if sum(fractions.values()) >= 1.0:
        raise CocomixError(
            f"corpus {corpus!r}: {' + '.join(f'data.{k}' for k in fractions)} "
            f"= {sum(fractions.values())} leaves nothing for train"
        )
