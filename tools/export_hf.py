"""Export a trained run as a Hugging Face model folder.

Usage::

    python tools/export_hf.py runs/pretrain/ntp/main/seed22 exported/ntp
    python tools/export_hf.py RUN OUT --step 1000              # this step on purpose
    python tools/export_hf.py RUN OUT --allow-unfinished       # a run stopped before its steps

NTP, KD and concept-prediction-only runs (mixer ``none``) become a folder that
``transformers.GPT2LMHeadModel.from_pretrained(OUT)`` and ``AutoTokenizer.from_pretrained(OUT)``
load with no custom code, so ``lm_eval --model hf --model_args pretrained=OUT --device cpu``
scores it. Runs whose mixer changes the forward pass (CoCoMix add/interleave, pause) become
``CocoMixForCausalLM`` folders with their modeling code (``AutoModelForCausalLM.from_pretrained(OUT,
trust_remote_code=True)``; add ``trust_remote_code=True`` to lm-eval's ``--model_args``). Each folder
carries a model card (``README.md``). A run whose last checkpoint is before its configured ``steps``
is refused unless ``--allow-unfinished`` or ``--step`` says it is meant. See ``docs/evaluation.md``
(``tools/export_hf.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from cocomix.eval.cli import check_output_dir, run_tool  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run folder (runs/<recipe>/<arm>/seed<k>)")
    parser.add_argument("out", type=Path, help="the folder to write (must not exist, or be empty)")
    parser.add_argument("--step", type=int, default=None,
                        help="checkpoint step, exported as asked even before the run's end (default: last)")
    parser.add_argument("--allow-unfinished", action="store_true",
                        help="export the last checkpoint of a run that has not reached its configured steps")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def export(args: argparse.Namespace) -> int:
    from cocomix.export.hf import export_run

    check_output_dir(args.out, "OUT")
    result = export_run(args.run, args.out, step=args.step, allow_unfinished=args.allow_unfinished)
    unfinished = f" (unfinished: {result.unfinished})" if result.unfinished else ""
    print(f"exported {args.run} at step {result.step}{unfinished} as {result.architecture} to {result.folder}")
    for part in result.dropped:
        print(f"  left out: {part}")
    remote = ", trust_remote_code=True" if result.architecture != "GPT2LMHeadModel" else ""
    print(f"  load it: transformers.AutoModelForCausalLM.from_pretrained({str(result.folder)!r}{remote})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_tool(lambda: export(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
