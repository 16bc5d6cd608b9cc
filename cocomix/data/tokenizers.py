"""Tokenizers: a small interface, and SentencePiece trained on a corpus (cached) or loaded.

SentencePiece is trained *losslessly*: identity normalisation, whitespace runs kept, ``"\\n"`` as
its own piece and byte fallback, so ``decode(encode(text)) == text``. That matters for the code
corpus (indentation and line breaks carry meaning) and keeps per-token losses comparable across
runs. The training text is a deterministic, evenly spread sample of the train split, so the same
corpus and options always give byte-identical models (checked in the tests); the cache key holds
``num_threads`` because multi-threaded unigram training gives a different (still deterministic)
model per thread count, and every model records its thread count anyway.
"""

from __future__ import annotations

import abc
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sentencepiece as spm

from cocomix.cache_files import atomic_dir, atomic_write_bytes, cache_key, file_fingerprint
from cocomix.registry import TOKENIZERS, CocomixError

if TYPE_CHECKING:
    from cocomix.data.corpora import Corpus

log = logging.getLogger(__name__)

# SentencePiece skips training sentences longer than max_sentence_length *bytes*; lines are cut
# into pieces of at most this many characters (4 bytes each at worst) so no text is dropped.
_MAX_LINE_CHARS = 2048
_MAX_SENTENCE_BYTES = 4 * _MAX_LINE_CHARS
MODEL_TYPES = ("bpe", "unigram", "word")


class Tokenizer(abc.ABC):
    """Text <-> token ids. ``encode`` adds no BOS/EOS; shards append EOS after each document."""

    path: Path
    vocab_size: int
    bos_id: int
    eos_id: int
    pad_id: int  # equals eos_id when the model defines no padding piece

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abc.abstractmethod
    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    @abc.abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """16-hex hash of the model file's bytes: keys every artifact built with this tokenizer."""


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model file, encoded with the ``sentencepiece`` package."""

    def __init__(self, path: Path, *, num_threads: int = 2) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CocomixError(
                f"tokenizer model {self.path} does not exist; fix tokenizer.model_file or leave "
                f"it empty to train one on the corpus"
            )
        data = self.path.read_bytes()
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(data)
        except (RuntimeError, OSError) as err:
            raise CocomixError(
                f"tokenizer model {self.path} is not a valid SentencePiece model ({err}); "
                f"delete it to retrain, or point tokenizer.model_file at a valid .model file"
            ) from None
        self._num_threads = num_threads
        self._fingerprint = file_fingerprint(self.path)
        self.vocab_size = int(self._sp.get_piece_size())
        eos = int(self._sp.eos_id())
        if eos < 0:
            raise CocomixError(
                f"tokenizer model {self.path} has no EOS piece, which separates documents; "
                f"train it with eos_id set"
            )
        self.eos_id = eos
        # A model without BOS/PAD (e.g. GPT-2 style) uses EOS for both, as GPT-2 does.
        bos, pad = int(self._sp.bos_id()), int(self._sp.pad_id())
        self.bos_id = bos if bos >= 0 else eos
        self.pad_id = pad if pad >= 0 else eos

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        # SentencePiece encodes a list in C++ across num_threads threads.
        return self._sp.encode(texts, out_type=int, num_threads=self._num_threads)  # type: ignore[no-any-return]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._sp.decode([int(i) for i in ids]))

    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


@dataclass
class SentencePieceConfig:
    """Options of the ``sentencepiece`` tokenizer (plain types so OmegaConf can hold them)."""

    model_file: str = ""
    """A trained ``.model`` file to use as it is; empty: train one on the corpus (cached)."""
    vocab_size: int = 8000
    model_type: str = "bpe"
    """bpe | unigram | word (whitespace-separated words as pieces: synthetic corpora whose
    symbols must stay one token each, e.g. ``latent_topics``; ``vocab_size`` is then a cap)."""
    character_coverage: float = 0.9995
    byte_fallback: bool = True
    max_train_chars: int = 20_000_000
    """Cap on the training text, sampled evenly and deterministically from the train split."""
    num_threads: int = 2
    train_corpus: str = ""
    """Train on this registered corpus (its default options) instead of the run's data: a student
    on another domain must share its teacher's tokenizer (paper Fig. 4c, distribution shift)."""

    @property
    def needs_corpus(self) -> bool:
        """Trained on a corpus (no ``model_file``): it exists only once the run's data is read."""
        return not self.model_file


def _training_options(config: SentencePieceConfig) -> dict[str, object]:
    """Everything that determines the trained model's bytes (and so goes into its cache key)."""
    options = asdict(config)
    del options["model_file"]
    del options["train_corpus"]  # which corpus is in the key through its fingerprint
    options.update(lossless=True, unk_id=0, bos_id=1, eos_id=2, pad_id=3)
    return options


def _split_line(line: str) -> Iterator[str]:
    for start in range(0, len(line), _MAX_LINE_CHARS):
        yield line[start : start + _MAX_LINE_CHARS]


def training_sentences(corpus: Corpus, max_chars: int) -> Iterator[str]:
    """Non-empty lines of the train split, at most ``max_chars`` characters in all.

    When the split is larger than the cap, documents are taken evenly across it (a document is
    kept while the characters taken lag the proportional target), so every source is
    represented rather than only the first ones. Deterministic for a given corpus.
    """
    total = sum(len(doc.text) for doc in corpus.documents("train"))
    ratio = 1.0 if total <= max_chars else max_chars / total
    seen = taken = 0
    for doc in corpus.documents("train"):
        keep = taken <= seen * ratio
        seen += len(doc.text)
        if not keep:
            continue
        for line in doc.text.splitlines():
            if not line.strip():
                continue
            for piece in _split_line(line[: max_chars - taken]):
                taken += len(piece)
                yield piece
            if taken >= max_chars:
                return


def train_sentencepiece(sentences: Iterator[str], config: SentencePieceConfig) -> bytes:
    """Train a model on ``sentences`` and return the serialized model."""
    if config.model_type not in MODEL_TYPES:
        raise CocomixError(
            f"tokenizer.model_type is {config.model_type!r}; use one of {', '.join(MODEL_TYPES)}"
        )
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sentences,
            model_writer=out,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            byte_fallback=config.byte_fallback,
            num_threads=config.num_threads,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=3,
            # Lossless: keep text exactly (see the module docstring).
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True,
            user_defined_symbols=["\n"],
            max_sentence_length=_MAX_SENTENCE_BYTES,
            minloglevel=2,
            # A word model's vocabulary is the corpus's words: vocab_size caps it rather than
            # having to match the word count exactly.
            hard_vocab_limit=config.model_type != "word",
        )
    except RuntimeError as err:
        raise CocomixError(
            f"training the SentencePiece tokenizer failed: {err}; "
            f"adjust tokenizer.vocab_size or give it more training text"
        ) from None
    return out.getvalue()


@TOKENIZERS.register("sentencepiece", SentencePieceConfig)
def build_sentencepiece(
    config: SentencePieceConfig, *, corpus: Corpus | None, cache_dir: Path
) -> Tokenizer:
    """Load ``config.model_file``, or train on ``corpus`` (cached under ``cache_dir``)."""
    if config.model_file:
        return SentencePieceTokenizer(Path(config.model_file), num_threads=config.num_threads)
    if corpus is None:
        raise CocomixError(
            "the sentencepiece tokenizer needs a corpus to train on, or tokenizer.model_file set"
        )
    key = cache_key(corpus.fingerprint(), _training_options(config))
    final = Path(cache_dir) / "tokenizers" / f"sentencepiece-{key}"
    model = final / "spm.model"
    if model.is_file():
        log.debug("tokenizer: reusing %s", model)
        return SentencePieceTokenizer(model, num_threads=config.num_threads)
    if final.exists():
        raise CocomixError(f"{final} exists but holds no spm.model; delete it to retrain")
    # Held in memory (at most max_train_chars characters) so the log can say how much it is.
    sentences = list(training_sentences(corpus, config.max_train_chars))
    n_chars = sum(len(s) for s in sentences)
    if n_chars == 0:
        raise CocomixError(
            f"corpus {corpus.name!r} has no text in its train split to train a tokenizer on"
        )
    log.info(
        "tokenizer: training sentencepiece %s (vocab %d) on %d chars of %s",
        config.model_type,
        config.vocab_size,
        n_chars,
        corpus.name,
    )
    data = train_sentencepiece(iter(sentences), config)
    with atomic_dir(final) as tmp:
        atomic_write_bytes(tmp / "spm.model", data)
    return SentencePieceTokenizer(model, num_threads=config.num_threads)
