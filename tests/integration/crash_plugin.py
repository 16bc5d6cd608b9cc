"""Test-only plugin: SIGKILL the process in the middle of writing a checkpoint.

With `COCOMIX_TEST_KILL_SAVE=<run path fragment>:<step>` set when it is imported, fairseq2's
checkpoint writer dumps the first file of that step's checkpoint into `step_<step>.tmp/` and
then the process kills itself, exactly as a pre-empted job or an OOM kill would, leaving a
half-written checkpoint behind. Without the variable the plugin changes nothing, so the same
`plugins:` list can resume the run in-process.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from fairseq2.checkpoint.manager import StandardCheckpointManager

_TARGET = os.environ.get("COCOMIX_TEST_KILL_SAVE", "")

if _TARGET:
    _fragment, _step = _TARGET.rsplit(":", 1)
    _original = StandardCheckpointManager._save_state_files

    def _save_then_die(self: Any, step_nr: int, records: list[Any]) -> None:
        if step_nr != int(_step) or _fragment not in str(self._checkpoint_dir):
            _original(self, step_nr, records)
            return
        _original(self, step_nr, records[:1])  # one file of the checkpoint is on disk
        os.kill(os.getpid(), signal.SIGKILL)

    StandardCheckpointManager._save_state_files = _save_then_die  # type: ignore[method-assign]
