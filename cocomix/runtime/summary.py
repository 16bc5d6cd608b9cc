"""Per-recipe summary of a multi-arm run: final validation loss/perplexity per arm, mean and std over
seeds, tokens and wall time; written as `summary.json` and `summary.md` beside the arm folders."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from cocomix.runtime.rundir import RunDir


def _last_record(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def read_run(run: RunDir) -> dict[str, Any]:
    """The final numbers of one run from fairseq2's JSONL records."""
    valid = _last_record(run.path / "metrics" / "valid.jsonl")
    train = _last_record(run.path / "metrics" / "train.jsonl")
    return {
        "arm": run.arm,
        "seed": run.seed,
        "step": valid.get("Step"),
        "valid_loss": valid.get("Loss"),
        "valid_ppl": valid.get("ppl"),
        "tokens": train.get("Total Number of Elements"),
        "wall_time_s": train.get("Total Time"),
        "train_tokens_per_s": train.get("Elements per Second"),
    }


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(recipe: str, runs: list[RunDir], out_dir: Path) -> str:
    """Write summary.json / summary.md for `runs` under `out_dir`; return the markdown table."""
    records = [read_run(run) for run in runs]
    by_arm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_arm[record["arm"]].append(record)
    arms = {}
    for arm, rows in by_arm.items():
        loss_mean, loss_std = _mean_std([r["valid_loss"] for r in rows])
        ppl_mean, ppl_std = _mean_std([r["valid_ppl"] for r in rows])
        arms[arm] = {
            "seeds": [r["seed"] for r in rows],
            "valid_loss_mean": loss_mean,
            "valid_loss_std": loss_std,
            "valid_ppl_mean": ppl_mean,
            "valid_ppl_std": ppl_std,
            "tokens": None if rows[0]["tokens"] is None else int(rows[0]["tokens"]),
            "wall_time_s_mean": _mean_std([r["wall_time_s"] for r in rows])[0],
        }
    header = (
        "| arm | seeds | valid loss | valid ppl | tokens | wall time (s) |\n"
        "|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {arm} | {len(a['seeds'])} | {a['valid_loss_mean']:.4f} ± {a['valid_loss_std']:.4f} | "
        f"{a['valid_ppl_mean']:.2f} ± {a['valid_ppl_std']:.2f} | {a['tokens']} | "
        f"{a['wall_time_s_mean']:.0f} |\n"
        for arm, a in arms.items()
    )
    table = header + body
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(
        json.dumps({"recipe": recipe, "arms": arms, "runs": records}, indent=2) + "\n"
    )
    (out_dir / "summary.md").write_text(f"# {recipe}\n\n{table}")
    return table
