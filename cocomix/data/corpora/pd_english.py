"""``pd_english``: the shipped slice of public-domain English (or a rebuilt full corpus).

Reads ``assets/pd_english/{train,valid,test}.jsonl.xz`` (``$COCOMIX_ASSETS/pd_english`` when that
is set: ``tools/build_corpus.py`` writes the full corpus in the same layout). ``MANIFEST.json``
beside the files records each file's sha256; a file is checked against it before it is read, so
the fingerprint, derived from the manifest, always describes what is yielded.

Sources: ``sotu``, ``brown``, ``shakespeare``, ``austen``, ``web_bible``, ``moby_dick``. The
held-out splits hold ~64 kB of every source each; ``train`` lines are interleaved across sources,
so ``max_train_docs`` keeps a balanced prefix.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocomix.cache_files import cache_key
from cocomix.data.corpora.base import Corpus, Document, assets_dir
from cocomix.registry import CORPORA, CocomixError

REBUILD_HINT = (
    "rebuild it with `python tools/build_corpus.py --write-slice assets/pd_english`, "
    "or point COCOMIX_ASSETS at a folder that holds pd_english/"
)


@dataclass
class PdEnglishConfig:
    """Options of the ``pd_english`` corpus."""

    sources: list[str] = field(default_factory=list)
    """Keep only these sources (empty: all of them)."""
    max_train_docs: int = 0
    """Yield at most this many train documents (0: all); valid and test are never cut."""


@CORPORA.register("pd_english", PdEnglishConfig)
class PdEnglishCorpus(Corpus):
    """The pd-english slice, filtered by source and optionally cut to its first train documents."""

    name = "pd_english"

    def __init__(self, config: PdEnglishConfig | None = None) -> None:
        self.config = config or PdEnglishConfig()
        self.directory = assets_dir() / "pd_english"
        manifest_path = self.directory / "MANIFEST.json"
        if not manifest_path.is_file():
            raise CocomixError(f"pd_english: no {manifest_path}; {REBUILD_HINT}")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        known = tuple(self.manifest["sources"])
        unknown = sorted(set(self.config.sources) - set(known))
        if unknown:
            raise CocomixError(
                f"pd_english has no source {', '.join(map(repr, unknown))}; "
                f"its sources: {', '.join(known)}"
            )
        if self.config.max_train_docs < 0:
            raise CocomixError(
                f"data.max_train_docs must be >= 0 (0: all), got {self.config.max_train_docs}"
            )
        wanted = set(self.config.sources) or set(known)
        self._sources = tuple(s for s in known if s in wanted)  # manifest order
        self._splits = tuple(f.removesuffix(".jsonl.xz") for f in self.manifest["files"])
        if "train" not in self._splits or "valid" not in self._splits:
            raise CocomixError(
                f"pd_english: {manifest_path} lists no train/valid file; {REBUILD_HINT}"
            )

    def splits(self) -> tuple[str, ...]:
        return self._splits

    def sources(self) -> tuple[str, ...]:
        return self._sources

    def _count(self, split: str) -> int:
        """Documents of ``split`` from the selected sources, as the manifest records them."""
        return sum(self.manifest["sources"][s]["splits"][split]["documents"] for s in self._sources)

    def _train_limit(self) -> int:
        """``max_train_docs`` made canonical: 0 when it would not cut anything."""
        limit = self.config.max_train_docs
        return 0 if limit >= self._count("train") else limit

    def _read(self, split: str) -> bytes:
        """The split's decompressed JSON lines, after checking the file against the manifest."""
        name = f"{split}.jsonl.xz"
        path: Path = self.directory / name
        try:
            packed = path.read_bytes()
        except FileNotFoundError:
            raise CocomixError(f"pd_english: {path} is missing; {REBUILD_HINT}") from None
        expected = self.manifest["files"][name]["sha256"]
        if hashlib.sha256(packed).hexdigest() != expected:
            raise CocomixError(
                f"pd_english: {path} does not match the sha256 in MANIFEST.json (changed or "
                f"corrupt); `python tools/build_corpus.py --check` shows which; {REBUILD_HINT}"
            )
        return lzma.decompress(packed)

    def documents(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        wanted = set(self._sources)
        limit = self._train_limit() if split == "train" else 0
        yielded = 0
        for line in self._read(split).splitlines():
            record = json.loads(line)
            if record["source"] not in wanted:
                continue
            yield Document(text=record["text"], source=record["source"])
            yielded += 1
            if limit and yielded >= limit:
                return

    def fingerprint(self) -> str:
        # Content: the uncompressed text's sha256 per file (a recompression does not change
        # what is yielded). Options in canonical form: all sources == no filter, a limit that
        # cuts nothing == no limit.
        content = {f: entry["raw_sha256"] for f, entry in self.manifest["files"].items()}
        every = self._sources == tuple(self.manifest["sources"])
        return cache_key(
            "pd_english", content, "all" if every else list(self._sources), self._train_limit()
        )
