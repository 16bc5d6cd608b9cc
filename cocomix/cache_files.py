"""Cached build artifacts: content keys and atomic writes (stdlib only, used by every layer).

Every cached artifact (tokenizer model, token shard, concept labels) lives in a directory whose
name carries a key derived from everything that determines its content. The directory is built
under a temporary sibling name and renamed into place only when complete, so an interrupted
build never leaves something that looks finished; the next run simply builds it again.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _canonical(obj: object) -> object:
    """JSON ``default`` hook: the types json does not know, in a stable form."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cache_key cannot hash a {type(obj).__name__}: {obj!r}")


def cache_key(*parts: object) -> str:
    """16-hex sha256 of a canonical JSON of ``parts`` (dataclasses through ``asdict``).

    Sorted keys and fixed separators make the key independent of dict order and formatting.
    """
    text = json.dumps(
        list(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_canonical
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """Full sha256 of a file, streamed so a multi-gigabyte file never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(path: Path) -> str:
    """16-hex sha256 of a file's bytes."""
    return sha256_file(path)[:16]


def _tmp_sibling(final: Path) -> Path:
    # The pid keeps two processes (e.g. two ranks) from writing into the same temporary.
    return final.with_name(f"{final.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it to ``final`` only if the block succeeds.

    On an exception the temporary is removed and the exception propagates. If ``final`` appears
    meanwhile (another process finished first), the existing one is kept and ours is dropped:
    both were built from the same key, so either is correct.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final)
    if tmp.exists():  # left over by a crashed process that had our pid
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        log.info("%s was built by another process meanwhile; keeping that one", final)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError:
        # Lost a race between the exists() check and the rename: the winner's copy stands.
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, data: str) -> None:
    """Write ``data`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, data.encode("utf-8"))
