"""``local``: any local text, jsonl or parquet files as a corpus (read by HF ``datasets``, offline).

Text files become documents per paragraph (blank-line separated), per line or per file
(``sample_by``); jsonl/parquet records give their ``text_field``. Empty documents are dropped.
Of the non-empty documents, a seeded random ``valid_fraction`` (at least one when the fraction
is above zero) forms ``valid``; both splits keep the files' order, and each document's source is
the file it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cocomix.cache_files import cache_key, sha256_file
from cocomix.data.corpora.base import Corpus, Document, check_fractions
from cocomix.data.corpora.hf import builder_for, expand_files, iter_texts, load_local, text_column
from cocomix.registry import CORPORA, CocomixError

SAMPLE_BY = ("paragraph", "line", "document")


@dataclass
class LocalTextConfig:
    """Options of the ``local`` corpus."""

    files: list[str] = field(default_factory=list)
    """Files, or folders of .txt/.md/.json/.jsonl/.parquet files."""
    format: str = "auto"  # auto | text | json | parquet
    text_field: str = "text"
    valid_fraction: float = 0.01
    split_seed: int = 0
    sample_by: str = "paragraph"  # text files: paragraph | line | document


@CORPORA.register("local", LocalTextConfig)
class LocalTextCorpus(Corpus):
    """Local files through HF packaged builders, split by a seeded draw over documents."""

    name = "local"

    def __init__(self, config: LocalTextConfig | None = None) -> None:
        self.config = config = config or LocalTextConfig()
        if not config.files:
            raise CocomixError("the local corpus needs files: data.files=[path/to/a.txt,...]")
        if config.sample_by not in SAMPLE_BY:
            raise CocomixError(
                f"data.sample_by must be one of {', '.join(SAMPLE_BY)}, got {config.sample_by!r}"
            )
        check_fractions(self.name, valid_fraction=config.valid_fraction)
        self.files = expand_files([Path(f).expanduser() for f in config.files])
        self.builders = [builder_for(f, config.format) for f in self.files]
        self._data: list[Any] | None = None
        self._valid: list[set[int]] | None = None  # per file: row indices held out
        self._fingerprint: str | None = None

    def _datasets(self) -> list[Any]:
        """One dataset per file, so that every document knows its file."""
        if self._data is None:
            data = []
            for path, builder in zip(self.files, self.builders, strict=True):
                kwargs = {"sample_by": self.config.sample_by} if builder == "text" else {}
                dataset = load_local([path], builder, text_field=self.config.text_field, **kwargs)
                text_column(dataset, self.config.text_field, str(path),
                            json_lines=path if builder == "json" else None)
                data.append(dataset)
            self._data = data
        return self._data

    def _held_out(self) -> list[set[int]]:
        if self._valid is None:
            import numpy as np

            # (file, row) of every non-empty document, in file order: the draw is over these.
            rows = [
                (i, r)
                for i, dataset in enumerate(self._datasets())
                for r, text in enumerate(iter_texts(dataset, self.config.text_field))
                if text and text.strip()
            ]
            if not rows:
                raise CocomixError(
                    f"the local corpus is empty: no non-empty document in "
                    f"{', '.join(str(f) for f in self.files)}"
                )
            n_valid = 0
            if self.config.valid_fraction > 0:
                n_valid = min(len(rows) - 1, max(1, round(len(rows) * self.config.valid_fraction)))
            picked = np.random.default_rng(self.config.split_seed).permutation(len(rows))[:n_valid]
            valid: list[set[int]] = [set() for _ in self.files]
            for k in picked.tolist():
                file_index, row = rows[k]
                valid[file_index].add(row)
            self._valid = valid
        return self._valid

    def splits(self) -> tuple[str, ...]:
        return ("train", "valid")

    def sources(self) -> tuple[str, ...]:
        return tuple(str(f) for f in self.files)

    def documents(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        valid = self._held_out()
        for i, dataset in enumerate(self._datasets()):
            source = str(self.files[i])
            for row, text in enumerate(iter_texts(dataset, self.config.text_field)):
                if text and text.strip() and (row in valid[i]) == (split == "valid"):
                    yield Document(text=text, source=source)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            cfg = self.config
            content = [(str(f), sha256_file(f)) for f in self.files]
            # sample_by only shapes text files: a json/parquet-only corpus ignores it.
            sample_by = cfg.sample_by if "text" in self.builders else None
            self._fingerprint = cache_key(
                "local",
                content,
                self.builders,
                cfg.text_field,
                cfg.valid_fraction,
                cfg.split_seed,
                sample_by,
            )
        return self._fingerprint
