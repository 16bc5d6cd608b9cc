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
""")


def hold(run_dir: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the folder's lock for ``seconds``."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), str(seconds)],
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
