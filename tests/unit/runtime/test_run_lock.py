"""One process per run folder: a second holder is refused at once (or waits), a dead one never
blocks, and the refusal names the holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cocomix.registry import CocomixError
from cocomix.runtime.run_lock import RunLock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from cocomix.runtime.run_lock import RunLock
    lock = RunLock(Path(sys.argv[1]))
    lock.acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    if sys.argv[3] == "release":
        lock.release()
""")


def hold(run_dir: Path, seconds: float, end: str = "exit") -> subprocess.Popen[str]:
    """Another process holding the folder's lock for ``seconds``, then releasing it or just exiting."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(seconds), end],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    holder = hold(tmp_path, 60)
    try:
        with pytest.raises(CocomixError, match=rf"is in use by pid {holder.pid} \(.*\); wait for it"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = hold(tmp_path, 60)
    holder.kill()
    holder.wait()
    with RunLock(tmp_path):  # the kernel released it with the process
        pass


def test_a_waiting_lock_gets_the_folder_when_the_holder_ends(tmp_path: Path) -> None:
    holder = hold(tmp_path, 1.5)
    start = time.monotonic()
    with RunLock(tmp_path, wait=True):
        assert time.monotonic() - start > 0.5
    holder.wait()


def test_the_same_process_can_take_it_again_after_release(tmp_path: Path) -> None:
    lock = RunLock(tmp_path)
    lock.acquire()
    lock.release()
    with RunLock(tmp_path):
        pass


def test_a_clean_release_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    with RunLock(tmp_path / "run"):
        assert (tmp_path / "run" / ".lock").exists()
    assert list((tmp_path / "run").iterdir()) == []


def test_a_waiter_behind_a_releasing_holder_holds_the_current_file(tmp_path: Path) -> None:
    holder = hold(tmp_path, 1.5, end="release")  # removes the file it waited on
    with RunLock(tmp_path, wait=True):
        holder.wait()
        with pytest.raises(CocomixError, match="is in use by pid"):
            RunLock(tmp_path).acquire()  # a newcomer sees the waiter's lock, not a fresh file


def test_an_unwritable_runs_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(CocomixError, match="cannot create the run folder .*; pass a writable --runs-dir"):
        RunLock(tmp_path / "a_file" / "run").acquire()
