"""Concept inspection: the concepts a CoCoMix run predicts per token, and, for each, the held-out
tokens whose teacher residual most activates that SAE latent, so a person can name it.

Usage::

    python tools/concepts.py runs/ablation/add_vs_mix/interleave/seed0 \\
        --text "The ship sailed out of the harbour at dawn."
    python tools/concepts.py RUN --text "..." --top 3 --examples 8 --scan-tokens 50000

Needs the run's teacher and SAE (recorded in its ``artifacts.json``). The scan reads the first
``--scan-tokens`` tokens of the run's held-out (valid) shard. See ``docs/evaluation.md``.
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
    parser.add_argument("run", type=Path, help="a run folder of a model with a concept head")
    parser.add_argument("--text", required=True)
    parser.add_argument("--top", type=int, default=5, help="concepts shown per token")
    parser.add_argument("--examples", type=int, default=5, help="held-out examples per concept")
    parser.add_argument("--scan-tokens", type=int, default=20_000,
                        help="held-out tokens scanned for examples (default 20000)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: last)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def body(args: argparse.Namespace) -> int:
    from cocomix.analysis.concept_inspection import (
        load_concept_artifacts,
        predicted_concepts,
        scan_latents,
    )
    from cocomix.analysis.steering import require_concept_head
    from cocomix.data.shards import TokenShard
    from cocomix.eval.loading import load_run
    from cocomix.runtime.rundir import missing_artifact
    from cocomix.registry import CocomixError

    if args.top < 1 or args.examples < 1:
        raise CocomixError("--top and --examples must be >= 1")
    run = load_run(args.run, step=args.step)
    require_concept_head(run.model, args.run)
    per_token = predicted_concepts(run.model, run.tokenizer, args.text, args.top, context=run.seq_len)
    if "valid_shard" not in run.artifacts:
        raise missing_artifact(args.run, "valid_shard", "rerun it with the current runtime")
    teacher, sae, layer = load_concept_artifacts(run.artifacts, args.run)
    shard = TokenShard.open(run.artifacts["valid_shard"])
    concepts = list(dict.fromkeys(c for t in per_token for c, _ in t.concepts))
    profiles = scan_latents(teacher, sae, layer, shard.tokens, concepts, tokenizer=run.tokenizer,
                            window=run.seq_len, max_tokens=args.scan_tokens,
                            per_latent=args.examples)
    print(f"run: {args.run} @ step {run.step}; teacher layer {layer}, SAE {sae.n_latents} latents "
          f"(k={sae.k}); examples from {next(iter(profiles.values())).scanned} held-out tokens\n")
    print("| # | token | " + " | ".join(f"concept {i + 1} (logit)" for i in range(args.top)) + " |")
    print("|---" * (args.top + 2) + "|")
    for t in per_token:
        cells = " | ".join(f"{c} ({v:.2f})" for c, v in t.concepts)
        print(f"| {t.position} | {t.token!r} | {cells} |")
    for concept in concepts:
        profile = profiles[concept]
        print(f"\nconcept {concept}: active at {profile.active}/{profile.scanned} held-out tokens "
              f"({100 * profile.frequency:.2f}%)")
        if not profile.examples:
            print("    (never active in the scanned tokens)")
        for example in profile.examples:
            print(f"    {example.activation:7.3f}  {example.text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_tool(lambda: body(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
