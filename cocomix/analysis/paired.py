"""Reports that compare each arm with NTP run by run (``reports: [paired_vs_ntp]`` and
``reports: [teacher_strength]``).

- ``paired_vs_ntp``: per arm, its final validation loss minus that of the NTP run with the same
  seed, budget (``steps``) and data, as mean ± std over seeds; a seed fixes the data order in
  every arm, so each pair shares its batches and the difference is free of data-order noise.
  "Tokens to reach" interpolates the arm's seed-mean curve at that NTP's final seed-mean loss, as
  ``compare`` does.
- ``teacher_strength`` (``study/teacher_strength``): the same rows, plus each CoCoMix arm minus
  the KD run with the same teacher, seed, budget and data (the paper's second baseline, Table 1),
  and a plot of arm - NTP against the teacher's own validation loss, one panel per budget, seed
  band ± one std.

A run's method (objective, and the mixer for concept objectives), budget, data and teacher are
read from its folder (``config.yaml``; ``artifacts.json`` -> the teacher's run folder -> its last
validation loss), never parsed from arm names; an arm is the unit that is averaged over seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocomix.analysis.compare import arm_curves, load_curves, read_jsonl, reach
from cocomix.analysis.seed_stats import mean_std, spread
from cocomix.eval.loading import run_info
from cocomix.runtime.rundir import read_artifacts, read_config
from cocomix.registry import CocomixError

BASELINE_METHOD = "ntp"
KD_METHOD = "kd"


@dataclass(frozen=True)
class RunPoint:
    path: Path
    arm: str
    seed: int
    method: str
    budget: int
    data: str
    """The run's data options (JSON): NTP baselines are paired only with runs on the same data."""
    teacher: str
    """The teacher's run folder ('' for runs without a teacher)."""
    final_loss: float
    lam: float | None
    """The objective's loss weight (``objective.lam``; None for objectives without one)."""


def _method(config: dict[str, Any]) -> str:
    objective = str((config.get("objective") or {}).get("name", "ntp"))
    mixer = str((config.get("mixer") or {}).get("name", "none"))
    return objective if mixer in ("none", "pause") else f"{objective}/{mixer}"


def describe(path: Path) -> RunPoint:
    info = run_info(path)
    if info.seed is None:
        raise CocomixError(f"{path} is not a <arm>/seed<k> run folder")
    config = read_config(path)
    valid = [r for r in read_jsonl(path / "metrics" / "valid.jsonl") if "Loss" in r]
    if not valid:
        raise CocomixError(f"{path}/metrics/valid.jsonl has no validation loss")
    teacher = str(read_artifacts(path).get("teacher", ""))
    data = json.dumps(config.get("data"), sort_keys=True)
    lam = (config.get("objective") or {}).get("lam")
    return RunPoint(path, info.arm, info.seed, _method(config), int(config["steps"]), data, teacher,
                    float(valid[-1]["Loss"]), None if lam is None else float(lam))


def teacher_valid_loss(teacher: str) -> float:
    """The teacher run's final validation loss (its own held-out split)."""
    valid = [r for r in read_jsonl(Path(teacher) / "metrics" / "valid.jsonl") if "Loss" in r]
    if not valid:
        raise CocomixError(f"teacher {teacher} has no validation loss record")
    return float(valid[-1]["Loss"])


def _reference_runs(points: list[RunPoint], method: str, key: Callable[[RunPoint], Hashable],
                    shared: Callable[[RunPoint], str], keep: str) -> dict[Hashable, RunPoint]:
    """The runs of a reference ``method`` (NTP, KD) by pairing ``key``; two runs with one key
    would make the pairing ambiguous, so they are refused, naming what they share."""
    runs: dict[Hashable, RunPoint] = {}
    for p in points:
        if p.method == method:
            k = key(p)
            if k in runs:
                raise CocomixError(
                    f"two {method} runs share {shared(p)} and data ({runs[k].path}, {p.path}); "
                    f"keep one per {keep}"
                )
            runs[k] = p
    return runs


def compare_to_baseline(points: list[RunPoint]) -> list[dict[str, Any]]:
    """One row per non-NTP arm: paired differences to NTP and tokens to reach its final loss."""
    baseline = _reference_runs(points, BASELINE_METHOD, lambda p: (p.budget, p.data, p.seed),
                               lambda p: f"seed {p.seed}, steps={p.budget}", "seed")
    groups: dict[str, list[RunPoint]] = defaultdict(list)
    for p in points:
        if p.method != BASELINE_METHOD:
            groups[p.arm].append(p)
    rows = []
    for arm, members in groups.items():
        budget, method, teacher, lam = (members[0].budget, members[0].method, members[0].teacher,
                                        members[0].lam)
        paired = [(m, baseline.get((m.budget, m.data, m.seed))) for m in members]
        missing = [m.seed for m, b in paired if b is None]
        if missing:
            raise CocomixError(
                f"arm {arm!r}: no {BASELINE_METHOD} run with steps={budget} on the same data for "
                f"seed(s) {missing}; the comparison pairs every run with the NTP run of its seed, "
                f"budget and data"
            )
        deltas = [m.final_loss - b.final_loss for m, b in paired if b is not None]
        base_runs = [b for _, b in paired if b is not None]
        arm_curve = arm_curves([load_curves(run_info(m.path), "arm") for m in members])["arm"]
        base_curve = arm_curves([load_curves(run_info(b.path), "ntp") for b in base_runs])["ntp"]
        target = float(base_curve.mean[-1])
        tokens = reach(arm_curve.tokens, arm_curve.mean, target)
        delta_mean, delta_std = mean_std(deltas)
        loss_mean, loss_std = mean_std([m.final_loss for m in members])
        rows.append({
            "budget": budget, "method": method, "lam": lam, "arm": arm,
            "teacher": teacher, "teacher_valid_loss": teacher_valid_loss(teacher) if teacher else None,
            "seeds": sorted(m.seed for m in members), "valid_loss_mean": loss_mean,
            "valid_loss_std": loss_std, "ntp_valid_loss_mean": mean_std([b.final_loss for b in base_runs])[0],
            "delta_mean": delta_mean, "delta_std": delta_std, "deltas": deltas,
            "tokens_to_reach_ntp": tokens, "ntp_tokens": float(base_curve.tokens[-1]),
        })
    return rows


def _seeds(members: list[dict[str, Any]]) -> str:
    """How many seeds a method's points have: '3 seeds', or '1-3 seeds' while some are missing."""
    counts = sorted({len(m["seeds"]) for m in members})
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{text} seed" + ("" if counts == [1] else "s")


def compare_to_kd(points: list[RunPoint]) -> dict[str, dict[str, Any]]:
    """Per arm with a teacher (KD arms aside): its final loss minus that of the KD run with the
    same teacher run, seed, budget and data, paired by seed like the NTP comparison. Arms whose
    seeds do not all have such a KD run are left out: the difference is reported only complete."""
    kd = _reference_runs(points, KD_METHOD, lambda p: (p.budget, p.data, p.seed, p.teacher),
                         lambda p: f"teacher {p.teacher}, seed {p.seed}, steps={p.budget}",
                         "seed and teacher")
    groups: dict[str, list[RunPoint]] = defaultdict(list)
    for p in points:
        if p.teacher and p.method not in (BASELINE_METHOD, KD_METHOD):
            groups[p.arm].append(p)
    out = {}
    for arm, members in groups.items():
        pairs = [(m, kd.get((m.budget, m.data, m.seed, m.teacher))) for m in members]
        if any(k is None for _, k in pairs):
            continue
        deltas = [m.final_loss - k.final_loss for m, k in pairs if k is not None]
        mean, std = mean_std(deltas)
        out[arm] = {"kd_arm": next(k.arm for _, k in pairs if k is not None), "kd_deltas": deltas,
                    "kd_delta_mean": mean, "kd_delta_std": std}
    return out


def _table(rows: list[dict[str, Any]], *, with_kd: bool = False) -> str:
    kd_head, kd_rule = (" arm - KD, same teacher (paired) |", "---|") if with_kd else ("", "")
    lines = ["| arm | steps | method | teacher valid loss | seeds | valid loss | NTP valid loss | "
             "arm - NTP (paired) | tokens to NTP's final loss |" + kd_head,
             "|---|---|---|---|---|---|---|---|---|" + kd_rule]
    for r in rows:
        seeds = len(r["seeds"])
        tokens = ("not reached" if r["tokens_to_reach_ntp"] is None else
                  f"{r['tokens_to_reach_ntp']:.3g} ({100 * (1 - r['tokens_to_reach_ntp'] / r['ntp_tokens']):+.1f}% saved)")
        teacher = "-" if r["teacher_valid_loss"] is None else f"{r['teacher_valid_loss']:.3f}"
        loss = spread(r["valid_loss_mean"], r["valid_loss_std"], seeds)
        kd = ""
        if with_kd:
            kd = (" - |" if r.get("kd_delta_mean") is None else
                  f" {spread(r['kd_delta_mean'], r['kd_delta_std'], seeds, signed=True)} |")
        lines.append(f"| {r['arm']} | {r['budget']} | {r['method']} | {teacher} | {seeds} | {loss} | "
                     f"{r['ntp_valid_loss_mean']:.4f} | {spread(r['delta_mean'], r['delta_std'], seeds, signed=True)} | "
                     f"{tokens} |{kd}")
    return "\n".join(lines)


def plot_series(rows: list[dict[str, Any]], budget: int) -> dict[str, list[dict[str, Any]]]:
    """The plot's lines at one budget: one per method and loss weight (the same mixer at lambda
    0.1 and 0.3 are two treatments, docs/findings.md §4, never averaged into one line), each
    ordered by teacher strength; rows without a teacher have no x and are left out."""
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["budget"] == budget and r["teacher_valid_loss"] is not None:
            label = r["method"] if r["lam"] is None else f"{r['method']} λ={r['lam']:g}"
            series[label].append(r)
    return {label: sorted(members, key=lambda r: r["teacher_valid_loss"])
            for label, members in sorted(series.items())}


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in rows})
    fig, axes = plt.subplots(1, len(budgets), figsize=(6.0 * len(budgets), 4.6), dpi=120,
                             squeeze=False, sharex=True, sharey=True)
    panels = {budget: plot_series(rows, budget) for budget in budgets}
    # One colour per series in every panel, so a method reads the same at each budget.
    labels = sorted({label for series in panels.values() for label in series})
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}
    for ax, budget in zip(axes[0], budgets, strict=True):
        for method, members in panels[budget].items():
            x = [r["teacher_valid_loss"] for r in members]
            y = [r["delta_mean"] for r in members]
            err = [r["delta_std"] for r in members]
            ax.plot(x, y, marker="o", linewidth=1.6, color=colour[method],
                    label=f"{method} ({_seeds(members)})")
            ax.fill_between(x, [a - b for a, b in zip(y, err, strict=True)],
                            [a + b for a, b in zip(y, err, strict=True)], color=colour[method],
                            alpha=0.2, linewidth=0)
        ax.axhline(0.0, color="0.4", linestyle="--", linewidth=1, label="width-matched NTP")
        ax.set_title(f"{budget} student steps")
        ax.set_xlabel("teacher validation loss (nats per token; lower = stronger)")
        ax.grid(True, alpha=0.3)
        # A legend per panel: the budgets may hold different series (lambda 0.1 only at 200 steps).
        ax.legend(title="mean; band: ± 1 std over seeds", fontsize=8, title_fontsize=8)
    axes[0][0].invert_xaxis()  # once: the panels share their x axis, and each call flips it
    axes[0][0].set_ylabel("arm - NTP final validation loss (paired by seed; below 0 = better)")
    fig.suptitle("Teacher strength vs the gain from teacher guidance")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _rows(runs: list[Path], name: str, *, with_kd: bool = False) -> list[dict[str, Any]]:
    points = [describe(run) for run in runs]
    rows = compare_to_baseline(points)
    if not rows:
        raise CocomixError(f"{name} needs arms besides {BASELINE_METHOD}")
    if with_kd:
        kd = compare_to_kd(points)
        rows = [{**row, **kd.get(row["arm"], {})} for row in rows]
    return rows


def paired_vs_ntp(runs: list[Path], out_dir: Path) -> str:
    """The report ``reports: [paired_vs_ntp]``: writes ``paired_vs_ntp.json/.md``."""
    rows = _rows(runs, "paired_vs_ntp")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "paired_vs_ntp.json").write_text(json.dumps(rows, indent=2) + "\n")
    text = ("## Each arm against NTP (same seed, budget and data; paired by seed)\n\n"
            + _table(rows) + "\n")
    (out_dir / "paired_vs_ntp.md").write_text(text)
    return text


def teacher_strength(runs: list[Path], out_dir: Path) -> str:
    """The report ``reports: [teacher_strength]``: writes ``teacher_strength.json/.md/.png``."""
    rows = _rows(runs, "teacher_strength", with_kd=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "teacher_strength.json").write_text(json.dumps(rows, indent=2) + "\n")
    _plot(rows, out_dir / "teacher_strength.png")
    text = ("## Teacher strength (arm - width-matched NTP at the same budget, paired by seed; "
            "CoCoMix also minus KD with its teacher)\n\n"
            + _table(rows, with_kd=True) + f"\n\nplot: {out_dir / 'teacher_strength.png'}\n")
    (out_dir / "teacher_strength.md").write_text(text)
    return text


__all__ = ["compare_to_baseline", "compare_to_kd", "describe", "paired_vs_ntp", "plot_series", "teacher_strength"]
