"""What every evaluation/analysis tool does around its work: offline defaults, one-line errors.

``run_tool(body, debug)`` runs ``body()`` and turns a ``CocomixError`` into ``error: ...`` on
stderr and exit status 2 (the traceback only with ``--debug``), as ``recipes/run.py`` does.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable


def offline_defaults() -> None:
    """Never reach for a hub at run time; silence fairseq2's import-time deprecations."""
    for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"fairseq2\..*")


def run_tool(body: Callable[[], int | None], *, debug: bool = False) -> int:
    offline_defaults()
    from cocomix.registry import CocomixError

    try:
        status = body()
    except CocomixError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return int(status or 0)
