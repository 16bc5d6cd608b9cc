"""Evaluate trained runs offline: held-out perplexity, a LAMBADA-style cloze, multiple choice.

Usage::

    python tools/evaluate.py runs/pretrain/ntp/main/seed22
    python tools/evaluate.py runs/ablation/add_vs_mix              # every <arm>/seed<k> run
    python tools/evaluate.py RUN --step 100 --tasks ppl --json out.json
    python tools/evaluate.py RUN --mc-file my_task.jsonl           # + multiple choice
    python tools/evaluate.py RUN --lm-eval my_task --lm-eval-include tasks/   # lm-eval tasks
    python tools/evaluate.py RUN --lm-eval \
        lambada_openai,wikitext,hellaswag,piqa,social_iqa,arc_easy,winogrande  # the paper's suite

Prints one markdown table with a column per run (see ``docs/evaluation.md`` for what each row
means). ``--max-tokens`` caps the predicted tokens per perplexity stream (default 20000, which
keeps a tiny model under a minute on a laptop CPU); numbers are comparable only at equal caps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from cocomix.eval.cli import check_output_file, run_tool  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders or recipe folders")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: last)")
    parser.add_argument("--tasks", default="ppl,cloze", help="comma list of ppl, cloze, mc")
    parser.add_argument("--mc-file", action="append", default=[], type=Path,
                        help="multiple-choice JSONL (repeatable); implies task mc")
    parser.add_argument("--max-tokens", type=int, default=20_000,
                        help="predicted tokens per perplexity stream (default 20000)")
    parser.add_argument("--cloze-items", type=int, default=500, help="cap on cloze items")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="tokenizer .model (only for runs without artifacts.json)")
    parser.add_argument("--lm-eval", default="", help="comma list of lm-eval task names to run too")
    parser.add_argument("--lm-eval-include", type=Path, default=None,
                        help="folder of extra lm-eval task YAMLs")
    parser.add_argument("--lm-eval-limit", type=int, default=None, help="items per lm-eval task")
    parser.add_argument("--json", type=Path, default=None, help="write all results to this file")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> int:
    from cocomix.eval import discover_runs, evaluate_loaded, format_table, load_run
    from cocomix.eval.suite import format_arm_table, parse_tasks

    tasks = parse_tasks(args.tasks)
    check_output_file(args.json, "--json")
    runs = discover_runs(args.runs)
    if args.step is not None and len(runs) > 1:
        print(f"note: --step {args.step} applies to all {len(runs)} runs", file=sys.stderr)
    results = []
    for info in runs:
        print(f"evaluating {info.path}", file=sys.stderr)
        run = load_run(info.path, step=args.step, tokenizer=args.tokenizer, device=args.device)
        lm_eval_results = None
        if args.lm_eval:  # first: an unreachable hub is reported before the offline suite runs
            from cocomix.eval.lm_eval_adapter import run_lm_eval

            names = [t.strip() for t in args.lm_eval.split(",") if t.strip()]
            lm_eval_results = run_lm_eval(run, names, include_path=args.lm_eval_include,
                                          limit=args.lm_eval_limit, batch_size=args.batch_size)
        result = evaluate_loaded(
            run, tasks=tasks, mc_files=args.mc_file, max_tokens=args.max_tokens,
            cloze_items=args.cloze_items, batch_size=args.batch_size, device=args.device,
        )
        if lm_eval_results is not None:
            result["lm_eval"] = lm_eval_results
        results.append(result)
    labels = _labels(results)
    print(format_table(results, labels))
    if len({r["arm"] for r in results}) < len(results):  # some arm has several seeds
        print("\nmean ± std over seeds, per arm:\n")
        print(format_arm_table(results))
    for result, label in zip(results, labels, strict=True):
        for task, metrics in result.get("lm_eval", {}).items():
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            print(f"lm-eval {label} {task}: {shown}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results if len(results) > 1 else results[0], indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _labels(results: list[dict]) -> list[str]:
    labels = [r["arm"] if r["seed"] is None else f"{r['arm']}/seed{r['seed']}" for r in results]
    if len(set(labels)) < len(labels):  # same arm names from different recipes: use the paths
        labels = [r["run"] for r in results]
    return [f"{label} @{r['step']}" for label, r in zip(labels, results, strict=True)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # lm-eval's built-in tasks load their data sets from the Hugging Face hub (or its cache).
    return run_tool(lambda: evaluate(args), debug=args.debug, hub_datasets=bool(args.lm_eval))


if __name__ == "__main__":
    sys.exit(main())
