"""One process at a time per run folder: an OS file lock held for the life of the run.

Two launches into one folder would both pass the config check and then interleave their
checkpoints and metrics. ``RunLock`` takes ``fcntl.flock`` on ``<run>/.lock``; the kernel drops it
when the holder exits, however it exits, so a killed run never leaves a stale lock behind. The
file records the holder's pid and command so the refusal can name them, and a clean exit removes
it, so a refused or failed attempt leaves the folder as it found it. Under torchrun only rank 0
(the folder's owner) locks: the ranks of one launch are one holder.

A student run refuses a held folder at once. An artifact that several runs build on demand (a
teacher trained by its producing recipe) waits for the holder instead, then finds it built.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cocomix.registry import CocomixError

LOCK_FILE = ".lock"


class RunLock:
    """``with RunLock(run_dir):`` holds the folder; ``wait=True`` waits for a current holder."""

    def __init__(self, run_dir: Path, *, wait: bool = False, what: str = "run") -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.wait = wait
        self.what = what
        self._file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CocomixError(f"cannot create the run folder {self.path.parent} ({err.strerror}); "
                               f"pass a writable --runs-dir") from None
        while True:
            handle = self._open()
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = describe_holder(self.path)
                if not self.wait:
                    handle.close()
                    raise CocomixError(
                        f"{self.path.parent} is in use by {holder}; wait for it to finish, or pass "
                        f"another --runs-dir to run beside it"
                    ) from None
                print(f"{self.what}: waiting for {holder}, which is building {self.path.parent}",
                      flush=True)
                fcntl.flock(handle, fcntl.LOCK_EX)
            # The holder we waited for removes the file as it releases it: our lock is then on an
            # unlinked inode that a newcomer would not see, so lock the current file instead.
            if _same_file(handle, self.path):
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        handle.flush()
        self._file = handle

    def _open(self) -> IO[str]:
        try:
            return open(self.path, "a+")  # noqa: SIM115 (held open for the life of the lock)
        except OSError as err:
            raise CocomixError(f"cannot write the lock file {self.path} ({err.strerror}); "
                               f"pass a writable --runs-dir") from None

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)  # while still held, so nobody locks a doomed file
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _same_file(handle: IO[str], path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def describe_holder(path: Path) -> str:
    """'pid N (command)' from a lock file, as far as it can be read."""
    try:
        record: dict[str, Any] = json.loads(path.read_text().strip() or "{}")
    except (OSError, json.JSONDecodeError):
        record = {}
    if not record:
        return "another process"
    return f"pid {record.get('pid')} ({record.get('command', '?')}, since {record.get('started', '?')})"


__all__ = ["LOCK_FILE", "RunLock", "describe_holder"]
