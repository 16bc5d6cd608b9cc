"""`python -m recipes.run RECIPE [--dry-run] [--runs-dir DIR] [key=value ...]`.

Examples::

    python -m recipes.run --list
    python -m recipes.run pretrain/ntp steps=200
    python -m recipes.run pretrain/ntp stop_at=100      # stops with a checkpoint; rerun to finish
    python -m recipes.run pretrain/ntp --dry-run model=gpt2_386m_ntp preset=paper
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m recipes.run",
        description="Compose a recipe (Hydra) and train it with fairseq2.",
    )
    parser.add_argument("recipe", nargs="?", help="recipe path under recipes/, e.g. pretrain/ntp")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides key=value (e.g. steps=200)")
    parser.add_argument("--list", action="store_true", help="list recipes and registries")
    parser.add_argument("--dry-run", action="store_true", help="print config and parameters only")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: ./runs")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--verbose", action="store_true",
                        help="also show fairseq2's own log (every metric, its config) on the console")
    args = parser.parse_intermixed_args(argv)
    if not args.list and not args.recipe:
        parser.error("give a RECIPE (see --list)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # fairseq2 announces its own deprecations on import; they are not the user's concern.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"fairseq2\..*")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from cocomix.registry import CocomixError
    from cocomix import experiment
    from cocomix.runtime.console import set_verbose, show_build_messages
    from cocomix.runtime.world import is_rank_zero

    set_verbose(args.verbose)
    show_build_messages()
    try:
        if args.list:
            print(experiment.listing())
        elif args.dry_run:
            plan = experiment.dry_run(args.recipe, args.overrides, args.runs_dir)  # every rank checks the recipe
            if is_rank_zero():  # one copy under torchrun/srun
                print(plan)
        else:
            experiment.run_recipe(args.recipe, args.overrides, args.runs_dir)
    except CocomixError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, experiment.RunInterrupted) as stop:
        if args.debug:
            raise
        print(interrupted_line(stop, argv if argv is not None else sys.argv[1:]), file=sys.stderr)
        return 130
    return 0


def interrupted_line(stop: BaseException, argv: list[str]) -> str:
    """One line for Ctrl-C: where the run stopped and the command that resumes it."""
    import shlex

    command = "python -m recipes.run " + " ".join(shlex.quote(a) for a in argv)
    run_dir = getattr(stop, "run_dir", None)
    if run_dir is None:
        return "interrupted before any run started; nothing to resume"
    step = getattr(stop, "last_step", None)
    where = f"its last checkpoint is step {step}" if step is not None else "it had saved no checkpoint yet"
    return f"interrupted: {run_dir} stopped ({where}); resume with: {command}"


if __name__ == "__main__":
    sys.exit(main())
