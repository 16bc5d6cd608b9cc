"""``openwebtext`` and ``openwebmath``: the paper's corpora, read through HF ``datasets``.

``path`` is a hub id (needs network, or the HF cache) or a local file or folder of
parquet/jsonl/text files in the same record format, e.g. a downloaded copy of the data set. The
validation split is made as the paper's nanoGPT-style preparation makes it:
``train_test_split(test_size=valid_fraction, seed=split_seed)`` (0.0005 and 2357).

Records whose text is empty are not yielded (they carry no tokens).
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


@dataclass
class HubTextConfig:
    """Options of ``openwebtext`` / ``openwebmath``."""

    path: str = "Skylion007/openwebtext"
    """A hub id, or a local file or folder of parquet/jsonl/text files."""
    text_field: str = "text"
    valid_fraction: float = 0.0005
    split_seed: int = 2357
    data_files: list[str] = field(default_factory=list)
    """Hub: passed to ``load_dataset``. Local folder: globs that select its files."""


class HubTextCorpus(Corpus):
    """One HF data set with one text field, split train/valid by ``train_test_split``."""

    def __init__(self, name: str, config: HubTextConfig) -> None:
        self.name = name
        self.config = config
        check_fractions(name, valid_fraction=config.valid_fraction)
        local = self.local = Path(config.path).expanduser()
        self.files: list[Path] | None = None
        if local.exists():
            self.files = expand_files([local], config.data_files or None)
            builders = {builder_for(f) for f in self.files}
            if len(builders) > 1:
                raise CocomixError(
                    f"{local} mixes formats ({', '.join(sorted(builders))}); "
                    f"select one with data.data_files"
                )
            self.builder = builders.pop()
        elif config.path.count("/") != 1 or config.path.startswith(("/", ".", "~")):
            raise CocomixError(
                f"data.path={config.path!r} is neither an existing file or folder nor a hub id "
                f"(owner/name)"
            )
        self._split: dict[str, Any] | None = None
        self._fingerprint: str | None = None

    def _load(self) -> Any:
        if self.files is not None:
            return load_local(self.files, self.builder)
        import datasets

        try:
            return datasets.load_dataset(
                self.config.path, data_files=self.config.data_files or None, split="train"
            )
        except Exception as err:  # offline: connection errors, or "not cached" errors
            raise CocomixError(
                f"data set {self.config.path!r} is not available offline (or could not be "
                f"fetched: {type(err).__name__}: {err}). Download it where there is network, or "
                f"point data.path= at local parquet/jsonl/text files of the same format, e.g. "
                f"`data={self.name} data.path=/data/{self.name}/`"
            ) from err

    def _splits(self) -> dict[str, Any]:
        if self._split is None:
            dataset = self._load()
            text_column(dataset, self.config.text_field, self.config.path)
            if len(dataset) == 0:
                raise CocomixError(f"data set {self.config.path!r} holds no records")
            if self.config.valid_fraction == 0:
                self._split = {"train": dataset, "valid": dataset.select([])}
            else:
                try:
                    parts = dataset.train_test_split(
                        test_size=self.config.valid_fraction,
                        seed=self.config.split_seed,
                        shuffle=True,
                    )
                except ValueError as err:  # too few records for the fraction
                    raise CocomixError(f"cannot split {self.config.path!r}: {err}") from None
                self._split = {"train": parts["train"], "valid": parts["test"]}
        return self._split

    def splits(self) -> tuple[str, ...]:
        return ("train", "valid")

    def sources(self) -> tuple[str, ...]:
        return (self.config.path,)

    def documents(self, split: str) -> Iterator[Document]:
        self.check_split(split)
        for text in iter_texts(self._splits()[split], self.config.text_field):
            if text and text.strip():
                yield Document(text=text, source=self.config.path)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            # Local files: their content. A hub id: only its name and options (a re-upload
            # under the same id is not detected; pin a local copy for exact reuse).
            content: Any = "hub"
            if self.files is not None:
                root = self.local if self.local.is_dir() else self.local.parent
                content = [(f.relative_to(root).as_posix(), sha256_file(f)) for f in self.files]
            cfg = self.config
            self._fingerprint = cache_key(
                self.name,
                cfg.path if self.files is None else "local",
                sorted(cfg.data_files),
                content,
                cfg.text_field,
                cfg.valid_fraction,
                cfg.split_seed,
            )
        return self._fingerprint


@CORPORA.register("openwebtext", HubTextConfig)
def openwebtext(config: HubTextConfig) -> HubTextCorpus:
    """OpenWebText (the paper's pretraining corpus)."""
    return HubTextCorpus("openwebtext", config)


@CORPORA.register(
    "openwebmath",
    HubTextConfig,
    defaults=lambda: HubTextConfig(path="open-web-math/open-web-math"),
)
def openwebmath(config: HubTextConfig) -> HubTextCorpus:
    """OpenWebMath (the paper's second pretraining domain)."""
    return HubTextCorpus("openwebmath", config)
