"""What every evaluation/analysis tool does around its work: offline defaults, one-line errors.

``run_tool(body, debug)`` runs ``body()`` and turns a ``CocomixError`` into ``error: ...`` on
stderr and exit status 2 (the traceback only with ``--debug``), as ``recipes/run.py`` does.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable


def offline_defaults(*, hub_datasets: bool = False) -> None:
    """Never reach for a hub at run time, except for data sets when ``hub_datasets`` (lm-eval's
    tasks load theirs from the hub); silence fairseq2's import-time deprecations. A variable the
    user set is kept either way."""
    keys = ["TRANSFORMERS_OFFLINE"]
    if not hub_datasets:
        keys += ["HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"]
    for key in keys:
        os.environ.setdefault(key, "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"fairseq2\..*")


def run_tool(body: Callable[[], int | None], *, debug: bool = False, hub_datasets: bool = False) -> int:
    offline_defaults(hub_datasets=hub_datasets)
    from cocomix.registry import CocomixError

    try:
        status = body()
    except CocomixError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    return int(status or 0)
