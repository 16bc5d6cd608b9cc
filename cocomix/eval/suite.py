"""``evaluate_run``: the offline evaluation suite of one run folder, as a plain dict.

The stand-ins for the paper's suite (brief §4.1; ``/work/shared/reference/data.md``):

| task   | what                                                   | stands in for                 |
|--------|--------------------------------------------------------|-------------------------------|
| `ppl`  | held-out perplexity per pd_english source (test split) | OpenWebText validation PPL    |
|        | and on pystdlib (test split), another distribution     | WikiText PPL (a shifted set)  |
| `cloze`| last-word cloze on held-out narrative passages         | LAMBADA (acc, PPL)            |
| `mc`   | local multiple-choice JSONL files                      | HellaSwag/PIQA/ARC/... (acc)  |

The ablation runner calls ``evaluate_run`` per run and ``flatten`` for a summary row.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cocomix.analysis.seed_stats import mean_std
from cocomix.data.corpora import Corpus, build_corpus
from cocomix.eval.cloze import ClozeItem, build_cloze_items, score_cloze
from cocomix.eval.loading import LoadedRun, load_run
from cocomix.eval.multiple_choice import load_mc_items, score_multiple_choice
from cocomix.eval.perplexity import corpus_perplexities, pooled
from cocomix.eval.scoring import LogLikelihoodScorer
from cocomix.registry import CocomixError

TASKS: tuple[str, ...] = ("ppl", "cloze", "mc")
DEFAULT_TASKS: tuple[str, ...] = ("ppl", "cloze")
"""``mc`` runs when files are given (``mc_files``), so it is not in the default list."""


@functools.lru_cache(maxsize=None)
def _corpus(name: str) -> Corpus:
    """Held-out corpora read once per process (evaluating many runs reuses them)."""
    return build_corpus(name)


@functools.lru_cache(maxsize=None)
def _cloze_items(max_items: int) -> tuple[ClozeItem, ...]:
    return tuple(build_cloze_items(_corpus("pd_english").documents("test"), max_items=max_items))


def parse_tasks(spec: str | Sequence[str]) -> tuple[str, ...]:
    names = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise CocomixError(f"unknown task(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TASKS)}")
    return tuple(dict.fromkeys(names))


def evaluate_loaded(
    run: LoadedRun,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
    mc_files: Sequence[Path | str] = (),
    max_tokens: int = 20_000,
    cloze_items: int = 500,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """The suite on an already loaded run (see ``evaluate_run``)."""
    tasks = parse_tasks(tasks)
    if "mc" in tasks and not mc_files:
        raise CocomixError("task mc needs at least one multiple-choice JSONL file (--mc-file)")
    if mc_files and "mc" not in tasks:
        tasks = (*tasks, "mc")
    if max_tokens < 1:
        raise CocomixError(f"max_tokens must be >= 1, got {max_tokens}")
    start = time.perf_counter()
    model, tok, seq_len = run.model, run.tokenizer, run.seq_len
    result: dict[str, Any] = {
        "run": str(run.info.path),
        "arm": run.info.arm,
        "seed": run.info.seed,
        "step": run.step,
        "seq_len": seq_len,
        "max_tokens": max_tokens,
        "tasks": list(tasks),
    }
    if "ppl" in tasks:
        english = corpus_perplexities(model, tok, _corpus("pd_english"), seq_len,
                                      max_tokens=max_tokens, batch_size=batch_size, device=device)
        english["pd_english/all"] = pooled(english)
        code = corpus_perplexities(model, tok, _corpus("pystdlib"), seq_len, by_source=False,
                                   max_tokens=max_tokens, batch_size=batch_size, device=device)
        result["ppl"] = {name: r.as_dict() for name, r in {**english, **code}.items()}
    scorer = LogLikelihoodScorer(model, max_len=seq_len, batch_size=batch_size,
                                 pad_id=tok.eos_id, device=device)
    if "cloze" in tasks:
        result["cloze"] = score_cloze(scorer, tok, _cloze_items(cloze_items)).as_dict()
    if "mc" in tasks:
        result["mc"] = {}
        for path in mc_files:
            name = Path(path).stem
            if name in result["mc"]:
                raise CocomixError(f"two multiple-choice files are named {name!r}; rename one")
            items = load_mc_items(path)
            result["mc"][name] = score_multiple_choice(scorer, tok, items, desc=f"mc {name}").as_dict()
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def evaluate_run(
    run_dir: Path | str,
    *,
    step: int | None = None,
    tasks: Sequence[str] = DEFAULT_TASKS,
    mc_files: Sequence[Path | str] = (),
    max_tokens: int = 20_000,
    cloze_items: int = 500,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    tokenizer: Path | str | None = None,
) -> dict[str, Any]:
    """Evaluate the checkpoint at ``step`` (default: the last) of ``run_dir``.

    Returns ``{"run", "arm", "seed", "step", "seq_len", "max_tokens", "tasks", "seconds",
    "ppl": {"pd_english/<source>" | "pd_english/all" | "pystdlib": {"nll", "ppl",
    "bits_per_byte", "tokens", "bytes"}}, "cloze": {"acc", "mean_logprob", "ppl", "n"},
    "mc": {"<file stem>": {"acc", "acc_norm", "acc_bytes", "n"}}}`` (keys present for the tasks
    run). ``max_tokens`` caps the predicted tokens per perplexity stream; ``tokenizer``
    overrides the one ``artifacts.json`` records (needed for runs that predate it).
    """
    run = load_run(run_dir, step=step, tokenizer=tokenizer, device=device)
    return evaluate_loaded(run, tasks=tasks, mc_files=mc_files, max_tokens=max_tokens,
                           cloze_items=cloze_items, batch_size=batch_size, device=device)


def flatten(result: dict[str, Any]) -> dict[str, float]:
    """One number per row, for tables and summaries: ``ppl/<name>``, ``bpb/<name>``,
    ``cloze/acc``, ``cloze/logprob``, ``cloze/ppl``, ``cloze/items``, ``mc/<name>/acc`` ..."""
    flat: dict[str, float] = {}
    for name, r in result.get("ppl", {}).items():
        short = name.removeprefix("pd_english/")
        flat[f"ppl/{short}"] = r["ppl"]
    for name, r in result.get("ppl", {}).items():
        flat[f"bpb/{name.removeprefix('pd_english/')}"] = r["bits_per_byte"]
    if "cloze" in result:
        c = result["cloze"]
        flat["cloze/acc"], flat["cloze/logprob"], flat["cloze/ppl"] = c["acc"], c["mean_logprob"], c["ppl"]
        flat["cloze/items"] = c["n"]
    for name, r in result.get("mc", {}).items():
        for key in ("acc", "acc_norm", "acc_bytes"):
            flat[f"mc/{name}/{key}"] = r[key]
    return flat


def format_table(results: Sequence[dict[str, Any]], labels: Sequence[str] | None = None) -> str:
    """A markdown table, one column per result, one row per ``flatten`` key."""
    if not results:
        raise CocomixError("no results to tabulate")
    labels = list(labels) if labels else [f"{r['arm']}/seed{r['seed']}@{r['step']}" for r in results]
    flats = [flatten(r) for r in results]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    lines = ["| metric | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for key in keys:
        cells = [_fmt(key, f.get(key)) for f in flats]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_arm_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table with one column per arm: the mean ± std over its seeds of each row."""
    by_arm: dict[str, list[dict[str, float]]] = {}
    for result in results:
        by_arm.setdefault(result["arm"], []).append(flatten(result))
    keys = list(dict.fromkeys(k for flats in by_arm.values() for f in flats for k in f))
    header = [f"{arm} ({len(flats)} seed{'s' if len(flats) > 1 else ''})" for arm, flats in by_arm.items()]
    lines = ["| metric | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for key in keys:
        cells = []
        for flats in by_arm.values():
            values = [f[key] for f in flats if key in f and not math.isnan(f[key])]
            if len(values) > 1 and key != "cloze/items":
                mean, std = mean_std(values)
                cells.append(f"{_fmt(key, mean)} ± {_fmt(key, std)}")
            else:
                cells.append(_fmt(key, values[0] if values else None))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "cloze/items":
        return str(int(value))
    if key.startswith("ppl/") or key == "cloze/ppl":
        return f"{value:.2f}"
    return f"{value:.4f}" if key.startswith(("bpb/", "cloze/logprob")) else f"{value:.3f}"
