"""The top layer: plan a recipe into runs and the teachers they need, run them, summarise.

``runtime/`` trains one run and never imports this package (``tests/unit/test_layering.py``).
"""

from cocomix.experiment.execute import RunInterrupted, run_recipe
from cocomix.experiment.plan import PlannedRun, dry_run, listing, plan_runs

__all__ = ["PlannedRun", "RunInterrupted", "dry_run", "listing", "plan_runs", "run_recipe"]
