"""Test-only plugin: hold a run in its first training step until a flag file appears.

With `COCOMIX_TEST_PAUSE_UNTIL=<path>` set when it is imported, the `ntp` objective touches
`<path>.started` on its call number `COCOMIX_TEST_PAUSE_AT` (default 1, the first micro-batch)
and then waits until `<path>` exists, so a test can act while a run is known to be in progress
(launch a second run into its folder, press Ctrl-C). Without the variable the plugin changes
nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cocomix.objectives.ntp import NextTokenPrediction

_FLAG = os.environ.get("COCOMIX_TEST_PAUSE_UNTIL", "")
_AT = int(os.environ.get("COCOMIX_TEST_PAUSE_AT", "1"))
_calls = 0

if _FLAG:
    _original = NextTokenPrediction.compute

    def _compute_after_flag(self: Any, model: Any, batch: Any) -> Any:
        global _calls
        _calls += 1
        if _calls == _AT:
            Path(_FLAG + ".started").touch()
            while not Path(_FLAG).exists():
                time.sleep(0.05)
        return _original(self, model, batch)

    NextTokenPrediction.compute = _compute_after_flag  # type: ignore[method-assign]
