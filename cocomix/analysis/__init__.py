"""Analysis of trained runs: FLOP accounting, run comparison, concept steering and inspection.

``cocomix.analysis.flops`` is the one place training FLOPs are counted; the other modules load
runs (``cocomix.eval.loading``) and are used by ``tools/compare.py``, ``tools/steer.py`` and
``tools/concepts.py``.
"""
