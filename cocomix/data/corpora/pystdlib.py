"""``pystdlib``: the local CPython standard library as a second, code-shaped domain.

Every ``*.py`` under ``sysconfig.get_paths()["stdlib"]`` except test suites (folders named
``test``, ``tests``, ``idle_test``) and installed packages (``site-packages``), in sorted order.
A file's split is fixed by a hash of its relative path, so adding or removing one file never moves
another between splits. Files that are not valid UTF-8 are skipped and counted (``skipped``);
whitespace-only files (empty ``__init__.py``) carry no text and are skipped too.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cocomix.cache_files import cache_key
from cocomix.data.corpora.base import Corpus, Document, check_fractions, unit_interval
from cocomix.registry import CORPORA, CocomixError

EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
SPLIT_SEED = "pystdlib"


@dataclass
class PyStdlibConfig:
    """Options of the ``pystdlib`` corpus."""

    valid_fraction: float = 0.02
    test_fraction: float = 0.02
    max_files: int = 0
    """Use only the first this-many files in sorted order (0: all); for quick runs and tests."""


def stdlib_files(root: Path) -> list[str]:
    """Relative paths of the stdlib's ``.py`` files outside test and package folders, sorted."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]  # prune: never descend
        rel = Path(folder).relative_to(root)
        found += [(rel / f).as_posix() for f in files if f.endswith(".py")]
    return sorted(found)


@CORPORA.register("pystdlib", PyStdlibConfig)
class PyStdlibCorpus(Corpus):
    """CPython's own library source, split train/valid/test by path hash."""

    name = "pystdlib"

    def __init__(self, config: PyStdlibConfig | None = None) -> None:
        self.config = config or PyStdlibConfig()
        check_fractions(
            self.name,
            valid_fraction=self.config.valid_fraction,
            test_fraction=self.config.test_fraction,
        )
        if self.config.max_files < 0:
            raise CocomixError(f"data.max_files must be >= 0 (0: all), got {self.config.max_files}")
        self.root = Path(sysconfig.get_paths()["stdlib"])
        files = stdlib_files(self.root)
        if not files:
            raise CocomixError(f"pystdlib: no .py files under {self.root}")
        if self.config.max_files:
            files = files[: self.config.max_files]
        self._split_of = {f: self._assign(f) for f in files}
        self._skipped: set[str] = set()
        self._fingerprint: str | None = None

    def _assign(self, rel: str) -> str:
        x = unit_interval(rel, SPLIT_SEED)
        if x < self.config.valid_fraction:
            return "valid"
        if x < self.config.valid_fraction + self.config.test_fraction:
            return "test"
        return "train"

    def splits(self) -> tuple[str, ...]:
        return ("train", "valid", "test")

    def sources(self) -> tuple[str, ...]:
        """Every file considered (relative paths), including any later skipped as unreadable."""
        return tuple(self._split_of)

    @property
    def skipped(self) -> tuple[str, ...]:
        """Files left out because they are not valid UTF-8 (known once they have been read)."""
        return tuple(sorted(self._skipped))

    def _text(self, rel: str) -> str | None:
        try:
            return (self.root / rel).read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            self._skipped.add(rel)
            return None

    def documents(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        for rel, where in self._split_of.items():
            if where != split:
                continue
            text = self._text(rel)
            if text is not None and text.strip():
                yield Document(text=text, source=rel)

    def fingerprint(self) -> str:
        # Hashing ~12 MB once is cheap next to tokenizing it; the result is kept for the
        # object's lifetime (the stdlib does not change under a running process).
        if self._fingerprint is None:
            content = []
            for rel in self._split_of:
                text = self._text(rel)
                if text is not None and text.strip():
                    content.append((rel, hashlib.sha256(text.encode("utf-8")).hexdigest()))
            self._fingerprint = cache_key(
                "pystdlib",
                platform.python_version(),
                content,
                self.config.valid_fraction,
                self.config.test_fraction,
            )
        return self._fingerprint
