"""``compare``: the tables and plots ``tools/compare.py`` prints and writes, from run folders."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cocomix.analysis.compare import (
    RunCurves,
    arm_curves,
    arm_labels,
    config_differences,
    load_curves,
    savings,
)
from cocomix.analysis.plots import plot_loss
from cocomix.analysis.seed_stats import mean_std, spread
from cocomix.eval.loading import discover_runs
from cocomix.registry import CocomixError


def _num(value: float | None, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _over_seeds(values: list[float], spec: str) -> str:
    """One run prints its value (or "-" when it has none); several print mean ± std."""
    return _num(values[0], spec) if len(values) == 1 else spread(*mean_std(values), len(values), spec)


def runs_table(runs: list[RunCurves]) -> str:
    lines = ["| arm | seed | step | valid loss | valid ppl | tokens | FLOPs | wall time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for run in runs:
        f = run.final()
        lines.append(
            f"| {f['arm']} | {f['seed']} | {f['step']} | {_num(f['valid_loss'])} | "
            f"{_num(f['valid_ppl'], '.2f')} | {f['tokens']:.3g} | {_num(f['flops'], '.3g')} | "
            f"{_num(f['wall_time_s'], '.0f')} |"
        )
    return "\n".join(lines)


def arms_table(runs: list[RunCurves]) -> str:
    grouped: dict[str, list[RunCurves]] = defaultdict(list)
    for run in runs:
        grouped[run.arm].append(run)
    lines = ["| arm | seeds | valid loss (mean ± std) | valid ppl (mean ± std) | FLOPs/token |",
             "|---|---|---|---|---|"]
    for arm, members in grouped.items():
        finals = [m.final() for m in members]
        fpt = members[0].flops_per_token
        lines.append(f"| {arm} | {len(members)} | {_over_seeds([f['valid_loss'] for f in finals], '.4f')} | "
                     f"{_over_seeds([f['valid_ppl'] for f in finals], '.2f')} | {_num(fpt, '.3g')} |")
    return "\n".join(lines)


def diff_table(runs: list[RunCurves]) -> str:
    diffs = config_differences(runs)
    arms = list(dict.fromkeys(r.arm for r in runs))
    if not diffs:
        return "(no config key differs between these runs besides the seed)"
    lines = ["| config key | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    lines += [f"| {key} | " + " | ".join(per_arm.get(a, "") for a in arms) + " |"
              for key, per_arm in diffs.items()]
    return "\n".join(lines)


def savings_table(rows: list[dict[str, Any]], baseline: str) -> str:
    target = rows[0]["target_loss"]
    lines = [f"Tokens to reach the final validation loss of baseline {baseline!r} "
             f"({target:.4f}; arm means over seeds, linear interpolation between validation "
             f"points):", "",
             "| arm | tokens to reach | tokens saved | FLOPs to reach | FLOPs saved |",
             "|---|---|---|---|---|"]
    for row in rows:
        reached = row["tokens"] is not None
        tokens = f"{row['tokens']:.4g}" if reached else "not reached"
        saved = f"{100 * row['tokens_saved']:.1f}%" if reached else "-"
        if "flops" in row:
            flops = f"{row['flops']:.4g}" if row["flops"] is not None else "not reached"
            fsaved = f"{100 * row['flops_saved']:.1f}%" if row["flops"] is not None else "-"
        else:
            flops = fsaved = "unknown"
        lines.append(f"| {row['arm']} | {tokens} | {saved} | {flops} | {fsaved} |")
    return "\n".join(lines)


def check_each_seed_once(runs: Sequence[RunCurves]) -> None:
    """An arm's mean must count each seed once, over runs that trained equally long."""
    by_arm: dict[str, list[RunCurves]] = defaultdict(list)
    for run in runs:
        by_arm[run.arm].append(run)
    for arm, members in by_arm.items():
        seen: dict[object, Path] = {}
        for run in members:
            seed = run.final()["seed"]
            if seed is not None and seed in seen:
                raise CocomixError(
                    f"arm {arm!r} has two runs of seed {seed} ({seen[seed]} and {run.info.path}); "
                    f"pass each run once, or --allow-mixed to average them anyway"
                )
            seen[seed] = run.info.path
        ends = sorted({int(run.final()["step"]) for run in members})
        if len(ends) > 1:
            raise CocomixError(
                f"the runs of arm {arm!r} end at different steps {ends} (an unfinished run?); "
                f"finish them, or pass --allow-mixed to average them over the steps they share"
            )


def compare(
    paths: Sequence[Path | str], out_dir: Path, *, baseline: str | None = None,
    allow_mixed: bool = False,
) -> tuple[str, list[Path]]:
    """Print-ready report and the files written under ``out_dir`` (PNGs, compare.md/json).

    ``baseline``: the arm "tokens to reach" refers to (default ``ntp`` when present; the
    section is left out, with a line saying so, when there is none). ``allow_mixed``: average
    an arm's runs even when a seed repeats or they end at different steps.
    """
    infos = discover_runs(paths)
    labels = arm_labels(infos)
    if baseline is None and "ntp" in labels:
        baseline = "ntp"
    runs = [load_curves(info, label) for info, label in zip(infos, labels, strict=True)]
    if not allow_mixed:
        check_each_seed_once(runs)
    runs.sort(key=lambda r: r.arm != baseline)  # stable: the baseline's rows first
    curves = arm_curves(runs)
    title = ", ".join(dict.fromkeys(r.info.recipe or str(r.info.path) for r in runs))
    sections = ["## Runs (final validation)", runs_table(runs), "", "## Arms", arms_table(runs),
                "", "## Config keys that differ", diff_table(runs), ""]
    rows: list[dict[str, Any]] = []
    if baseline is not None:
        rows = savings(curves, baseline)
        sections += ["## Tokens to reach the baseline", savings_table(rows, baseline), ""]
    else:
        sections += ["(no baseline arm: pass --baseline ARM for tokens-to-reach)", ""]
    notes = sorted({f"note: FLOPs unknown for {r.info.path}: {r.flops_note}" for r in runs if r.flops_note})
    for arm, curve in curves.items():
        ends = sorted({int(r.steps[-1]) for r in runs if r.arm == arm})
        if len(ends) > 1:
            notes.append(f"note: the seeds of arm {arm!r} end at different steps {ends}; its curve "
                         f"and band use the {len(curve.steps)} validation steps they all share")
    sections += notes
    text = "\n".join(sections).rstrip() + "\n"
    files = []
    for axis in ("tokens", "flops"):
        written = plot_loss(curves, axis, out_dir / f"valid_loss_vs_{axis}.png",
                            title_suffix=title, baseline=baseline)
        if written is not None:
            files.append(written)
        elif axis == "flops":
            text += "valid_loss_vs_flops.png not written: no arm has a FLOP count (see notes)\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.md").write_text(text)
    (out_dir / "compare.json").write_text(json.dumps(
        {"runs": [r.final() for r in runs], "baseline": baseline, "tokens_to_reach": rows,
         "config_differences": config_differences(runs)}, indent=2) + "\n")
    files += [out_dir / "compare.md", out_dir / "compare.json"]
    if not files:
        raise CocomixError("nothing was written")
    return text, files
