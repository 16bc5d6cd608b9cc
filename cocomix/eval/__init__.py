"""Offline evaluation of trained runs (paper brief §4.1 stand-ins) and the lm-eval adapter.

Entry point: ``evaluate_run(run_dir, ...) -> dict`` (``cocomix.eval.suite``); ``flatten`` and
``format_table`` turn results into table rows. The lm-eval adapter lives in
``cocomix.eval.lm_eval_adapter`` and is imported only when used.

Names are resolved lazily, so ``cocomix.eval.cli`` (used by every tool before it parses its
arguments) does not pull in torch and fairseq2.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "LoadedRun": "cocomix.eval.loading",
    "discover_runs": "cocomix.eval.loading",
    "load_run": "cocomix.eval.loading",
    "evaluate_loaded": "cocomix.eval.suite",
    "evaluate_run": "cocomix.eval.suite",
    "flatten": "cocomix.eval.suite",
    "format_table": "cocomix.eval.suite",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cocomix.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
