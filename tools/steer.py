"""Concept steering (paper Fig. 5): generate with one predicted concept's logit scaled, beside the
unsteered generation from the same seed.

Usage::

    python tools/steer.py runs/ablation/add_vs_mix/interleave/seed0 \\
        --prompt "The best platform for buying tickets is the" --concept 123 --scale 10
    python tools/steer.py RUN --prompt "..." --concept 123 --scale -5 --greedy --max-new-tokens 40

``--scale`` multiplies the concept's predicted logit before the head's TopK at every position
(1 = no change; the paper uses -10..10). Find concept ids worth steering with
``tools/concepts.py``. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from cocomix.eval.cli import run_tool  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder of a model with a concept head")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--concept", type=int, required=True, help="concept (SAE latent) id")
    parser.add_argument("--scale", type=float, required=True, help="logit multiplier (1 = none)")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--greedy", action="store_true", help="arg-max decoding (default: sample)")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=40, help="sample among the k likeliest tokens")
    parser.add_argument("--seed", type=int, default=0, help="one seed for both generations")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: last)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer .model (only for runs without artifacts.json)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def body(args: argparse.Namespace) -> int:
    import torch

    from cocomix.analysis.steering import (
        require_finite_scale,
        require_fits_context,
        require_steerable,
        steer_generate,
    )
    from cocomix.eval.loading import load_run
    from cocomix.registry import CocomixError

    require_finite_scale(args.scale, "--scale")  # before the run is loaded
    run = load_run(args.run, step=args.step, tokenizer=args.tokenizer)
    require_steerable(run.model, args.run)
    ids = run.tokenizer.encode(args.prompt)
    if not ids:
        raise CocomixError("the prompt encodes to no tokens")
    # The last generated token is never fed back: the model reads prompt + new - 1 positions.
    fits_prompt = len(ids) <= run.seq_len
    require_fits_context(
        max(len(ids), len(ids) + args.max_new_tokens - 1), run.seq_len,
        what=f"the text the model reads (--prompt's {len(ids)} tokens + --max-new-tokens "
             f"{args.max_new_tokens} - 1)",
        fix=(f"lower --max-new-tokens to at most {run.seq_len - len(ids) + 1}, or shorten --prompt"
             if fits_prompt else f"shorten --prompt to at most {run.seq_len} tokens"),
    )
    result = steer_generate(
        run.model, torch.tensor([ids]), args.concept, args.scale, args.max_new_tokens,
        decode=run.tokenizer.decode, greedy=args.greedy, temperature=args.temperature,
        top_k=args.top_k, seed=args.seed,
    )
    mode = "greedy" if args.greedy else f"sampled (T={args.temperature}, top-k={args.top_k}, seed={args.seed})"
    print(f"run: {args.run} @ step {run.step}; {mode}")
    print(f"prompt: {args.prompt!r}")
    print(f"concept {args.concept} x {args.scale:g} (k={run.model.config.concept_topk} of "
          f"{run.model.config.num_concepts} concepts kept per position)\n")
    for name, gen in (("unsteered", result.unsteered), (f"steered (x{args.scale:g})", result.steered)):
        print(f"--- {name}: concept in the top-k at {gen.topk_hits}/{gen.positions} positions")
        print(textwrap.indent(args.prompt + "⟦" + gen.text + "⟧", "    "))
        print()
    if result.unsteered.tokens == result.steered.tokens:
        print("(identical continuations: the steering did not change any chosen token)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_tool(lambda: body(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
