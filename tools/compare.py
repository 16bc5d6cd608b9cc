"""Compare runs: final metrics, mean ± std per arm, differing config keys, loss-vs-tokens/FLOPs
plots and the tokens (and FLOPs) each arm needs to reach the baseline's final validation loss.

Usage::

    python tools/compare.py runs/ablation/add_vs_mix                 # one recipe folder
    python tools/compare.py runs/pretrain/ntp runs/pretrain/cocomix --out cmp/ --baseline main
    python tools/compare.py RUN_DIR RUN_DIR ... --out cmp/

A recipe folder expands to its ``<arm>/seed<k>`` runs. Writes ``valid_loss_vs_tokens.png``,
``valid_loss_vs_flops.png``, ``compare.md`` and ``compare.json`` under ``--out`` (default:
``<recipe folder>/compare`` for a single recipe folder). See ``docs/evaluation.md``.
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
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or recipe folders")
    parser.add_argument("--out", type=Path, default=None, help="folder for plots and tables")
    parser.add_argument("--baseline", default=None,
                        help="arm whose final loss the others must reach (default: ntp if present)")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="average an arm's runs even if a seed repeats or they end at different steps")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def default_out(runs: list[Path]) -> Path:
    from cocomix.eval.loading import is_run_dir
    from cocomix.registry import CocomixError

    if len(runs) == 1 and not is_run_dir(runs[0]):
        return runs[0] / "compare"
    raise CocomixError("pass --out DIR when comparing run folders or several recipe folders")


def body(args: argparse.Namespace) -> int:
    from cocomix.analysis.compare_report import compare

    out = args.out if args.out is not None else default_out(args.runs)
    check_output_dir(out, "--out")
    text, files = compare(args.runs, out, baseline=args.baseline, allow_mixed=args.allow_mixed)
    print(text, end="")
    for path in files:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_tool(lambda: body(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
