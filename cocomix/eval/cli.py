"""What every evaluation/analysis tool does around its work: offline defaults, one-line errors.

``run_tool(body, debug)`` runs ``body()`` and turns a ``CocomixError`` into ``error: ...`` on
stderr and exit status 2 (the traceback only with ``--debug``), as ``recipes/run.py`` does.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path


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
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    return int(status or 0)


def check_output_file(path: Path | None, option: str) -> None:
    """Refuse an output file that cannot be written, before the work it would hold is done."""
    if path is None:
        return
    from cocomix.registry import CocomixError

    if path.is_dir():
        raise CocomixError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    _check_creatable(path.parent, f"{option} {path}")


def check_output_dir(path: Path, option: str) -> None:
    """Refuse an output folder that cannot be created or written, before any work."""
    from cocomix.registry import CocomixError

    if path.exists() and not path.is_dir():
        raise CocomixError(f"{option} {path} is a file; give a folder (it is created if missing)")
    _check_creatable(path, f"{option} {path}")


def _check_creatable(folder: Path, what: str) -> None:
    from cocomix.registry import CocomixError

    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CocomixError(f"{what} cannot be created: {existing} is a file; choose another path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise CocomixError(f"{what} cannot be created: {existing} is not writable; choose another path")
