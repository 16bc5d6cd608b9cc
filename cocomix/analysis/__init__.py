"""Analysis of trained runs: run comparison, reports, concept steering and inspection.

Training FLOPs are counted in one place, ``cocomix.runtime.flops`` (training logs them); these
modules load
runs (``cocomix.eval.loading``) and are used by ``tools/compare.py``, ``tools/steer.py`` and
``tools/concepts.py``.
"""
