"""Build a recipe's artifacts in one process before a multi-GPU run: corpus (downloaded from the
Hugging Face hub when ``data.path`` is a hub id and the hub is reachable), tokenizer, token
shards, and the teacher and SAE (loaded and checked against the student's tokenizer).

Usage::

    python tools/prepare.py paper/faithful_69m teacher.path=/models/gpt2 \\
        sae.path=/models/openai_sae/resid_post_mlp_v5_32k/5.pt tokenizer.num_threads=32

Then ``torchrun ... -m recipes.run`` with the same recipe and overrides finds everything cached
under the artifact folder (``<runs-dir>/_artifacts`` or ``$COCOMIX_ARTIFACTS``), so no rank
tokenizes the corpus again. Overrides are the recipe's (``key=value``); see ``docs/paper.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from cocomix.eval.cli import run_tool  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("recipe", help="recipe path under recipes/, e.g. paper/faithful_69m")
    parser.add_argument("overrides", nargs="*", help="the run's overrides, key=value")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="default: ./runs")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_intermixed_args(argv)


def prepare(args: argparse.Namespace) -> int:
    from cocomix.experiment import plan_runs
    from cocomix.experiment.execute import train_teacher
    from cocomix.experiment.plan import teacher_nodes
    from cocomix.runtime.artifacts import artifact_dir, prepare_data
    from cocomix.runtime.components import build_concept_components

    cache_dir = artifact_dir(args.runs_dir)
    plans = plan_runs(args.recipe, list(args.overrides))
    for node in teacher_nodes(plans, cache_dir):  # a teacher the recipe trains on demand
        train_teacher(node, cache_dir)
    seen: set[str] = set()
    for plan in plans:
        resolved = plan.composed.resolved()
        # Arms share data and tokenizer unless they override them: build each combination once
        # (a local corpus is hashed file by file, which takes minutes for OpenWebText).
        key = repr((resolved["data"], resolved["tokenizer"], resolved["teacher"], resolved["sae"],
                    resolved["concepts"], resolved["objective"]))
        if key in seen:
            continue
        seen.add(key)
        data = prepare_data(plan.composed, cache_dir)
        print(f"[{plan.arm}] tokenizer {data.tokenizer!r}")
        print(f"[{plan.arm}] shards: train {data.train.n_tokens:,} tokens, valid {data.valid.n_tokens:,} "
              f"tokens ({data.train.directory.parent})")
        components = build_concept_components(plan.composed, cache_dir, data)
        if components.artifacts is not None:
            for what, where in components.artifacts.locations.items():
                print(f"[{plan.arm}] {what}: {where} (checked)")
        elif components.teacher is not None:
            print(f"[{plan.arm}] teacher: {components.teacher_location} (checked)")
    print(f"artifacts ready under {cache_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # The one step that may download (the corpus, from the hub; HF_DATASETS_OFFLINE=1 forbids it).
    # Weights are only ever read from local paths.
    return run_tool(lambda: prepare(args), debug=args.debug, hub_datasets=True)


if __name__ == "__main__":
    sys.exit(main())
