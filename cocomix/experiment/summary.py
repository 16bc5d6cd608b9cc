"""Per-recipe summary of a multi-arm run, written as `summary.json` and `summary.md` beside the arm
folders: per arm, the final validation loss/perplexity (mean and std over seeds), held-out
perplexity on the shipped test text, parameters (total and active), tokens, training FLOPs and
wall time, so arms are compared on what they cost as well as what they reach."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cocomix.analysis.compare import read_jsonl
from cocomix.analysis.seed_stats import mean_std, spread
from cocomix.cache_files import atomic_write_text
from cocomix.runtime.rundir import RunDir


def _last_record(path: Path) -> dict[str, Any]:
    records = read_jsonl(path)  # the same reader tools/compare.py uses; a missing file is an error
    return records[-1] if records else {}


def _costs(run: RunDir) -> dict[str, Any]:
    """Parameters and training FLOPs from the run's own model config (cocomix.runtime.flops)."""
    import torch

    from cocomix.runtime.run_flops import run_flops_per_token
    from cocomix.models import count_parameters, create_cocomix_lm
    from cocomix.runtime.checkpoint import load_model_config

    total, active = count_parameters(create_cocomix_lm(load_model_config(run.path), device=torch.device("meta")))
    return {"params_total": total, "params_active": active,
            "flops_per_token": run_flops_per_token(run.path).total}


def read_run(run: RunDir, *, held_out_tokens: int = 0) -> dict[str, Any]:
    """The final numbers of one run; `held_out_tokens` > 0 also scores the shipped test text."""
    valid = _last_record(run.path / "metrics" / "valid.jsonl")
    train = _last_record(run.path / "metrics" / "train.jsonl")
    tokens = train.get("Total Number of Elements")
    record: dict[str, Any] = {
        "arm": run.arm,
        "seed": run.seed,
        "step": valid.get("Step"),
        "valid_loss": valid.get("Loss"),
        "valid_ppl": valid.get("ppl"),
        "tokens": None if tokens is None else int(tokens),
        "wall_time_s": train.get("Total Time"),
        **_costs(run),
    }
    record["train_flops"] = None if tokens is None else record["flops_per_token"] * int(tokens)
    if held_out_tokens > 0:
        from cocomix.eval.held_out import held_out_ppl

        record["test_ppl"] = held_out_ppl(run.path, held_out_tokens).ppl
    return record


def _mean_std(values: list[Any]) -> tuple[float, float]:
    """Over the runs that have the value (held-out perplexity is absent when not scored)."""
    return mean_std([v for v in values if v is not None and math.isfinite(v)])


def _arm(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": [r["seed"] for r in rows]}
    for key in ("valid_loss", "valid_ppl", "test_ppl"):
        out[f"{key}_mean"], out[f"{key}_std"] = _mean_std([r.get(key) for r in rows])
    for key in ("tokens", "params_total", "params_active", "flops_per_token", "train_flops"):
        out[key] = rows[0][key]
    out["wall_time_s_mean"] = _mean_std([r["wall_time_s"] for r in rows])[0]
    return out


def _table(arms: dict[str, dict[str, Any]]) -> str:
    # The test column always scores the shipped English test text, whatever the run trained on
    # (kd/distribution_shift trains on code), so the header names it.
    head = ("| arm | seeds | valid loss | valid ppl | pd_english test ppl | params (active) | "
            "tokens | train FLOPs | wall (s) |\n|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for name, a in arms.items():
        seeds = len(a["seeds"])
        test = (spread(a["test_ppl_mean"], a["test_ppl_std"], seeds, ".1f")
                if math.isfinite(a["test_ppl_mean"]) else "-")
        rows.append(
            f"| {name} | {seeds} | {spread(a['valid_loss_mean'], a['valid_loss_std'], seeds, '.4f')} | "
            f"{spread(a['valid_ppl_mean'], a['valid_ppl_std'], seeds, '.1f')} | {test} | "
            f"{a['params_total'] / 1e6:.2f}M ({a['params_active'] / 1e6:.2f}M) | {a['tokens']} | "
            f"{a['train_flops']:.3g} | {a['wall_time_s_mean']:.0f} |\n"
        )
    return head + "".join(rows)


def summarize(recipe: str, runs: list[RunDir], out_dir: Path, *, held_out_tokens: int = 0) -> str:
    """Write summary.json / summary.md for `runs` under `out_dir`; return the markdown table."""
    if held_out_tokens > 0:  # minutes for a study; say so before the wait
        print(f"summary: held-out test perplexity of {len(runs)} run(s) on {held_out_tokens} test "
              "tokens per source (a score kept in a run's eval/held_out_ppl.json is reused)")
    records = [read_run(run, held_out_tokens=held_out_tokens)
               for run in tqdm(runs, desc="summary", unit="run", disable=None, leave=False)]
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_arm[record["arm"]].append(record)
    arms = {arm: _arm(rows) for arm, rows in by_arm.items()}
    table = _table(arms)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out_dir / "summary.json",
        json.dumps({"recipe": recipe, "arms": arms, "runs": records}, indent=2) + "\n",
    )
    atomic_write_text(out_dir / "summary.md", f"# {recipe}\n\n{table}")
    return table
