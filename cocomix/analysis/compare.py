"""Compare runs from their records: final metrics, mean ± std per arm, config differences and
"tokens to reach the baseline's final validation loss".

Reads fairseq2's JSONL records (``metrics/valid.jsonl``: ``Step``, ``Loss``, ``ppl``;
``metrics/train.jsonl``: ``Total Number of Elements``, ``Total Time``, ``Elements per Second``)
and ``config.yaml`` of each run; nothing is loaded onto a device. Tokens at a validation step
are ``step × tokens per step``, the latter read from the first train record (cumulative
elements / step, before any resume could restart a counter). FLOPs are
``tokens × cocomix.runtime.run_flops.run_flops_per_token(run)`` (paper brief §6.3 rules).

Runs are grouped into arms by their ``<arm>`` folder name (prefixed with the recipe when two
recipes share an arm name); the seeds of an arm form its band in the plots.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cocomix.eval.loading import RunInfo
from cocomix.runtime.rundir import read_config
from cocomix.registry import CocomixError

IGNORED_CONFIG_KEYS: tuple[str, ...] = ("seed", "seeds", "arms", "description", "stop_at")
"""Keys that never make two runs different experiments for this table (the seed is a column)."""


@dataclass
class RunCurves:
    info: RunInfo
    arm: str
    steps: np.ndarray
    valid_loss: np.ndarray
    valid_ppl: np.ndarray
    tokens_per_step: float
    flops_per_token: float | None
    flops_note: str
    config: dict[str, Any]
    train_last: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> np.ndarray:
        return self.steps * self.tokens_per_step

    def final(self) -> dict[str, Any]:
        tokens = float(self.tokens[-1])
        return {
            "arm": self.arm, "seed": self.info.seed, "run": str(self.info.path),
            "step": int(self.steps[-1]), "valid_loss": float(self.valid_loss[-1]),
            "valid_ppl": float(self.valid_ppl[-1]), "tokens": tokens,
            "flops": tokens * self.flops_per_token if self.flops_per_token else None,
            "wall_time_s": self.train_last.get("Total Time"),
            "train_tokens_per_s": self.train_last.get("Elements per Second"),
        }


@dataclass
class ArmCurve:
    """Mean and min-max band over an arm's seeds, at the validation steps all seeds share."""

    arm: str
    steps: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray | None
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: list[int | None]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a fairseq2 metrics file, one per `Step` (records without one all kept).

    A resumed run replays the steps after its last checkpoint and fairseq2 appends their records
    again; the last record of a step (the resumed run's) replaces the earlier one in place.
    """
    if not path.is_file():
        raise CocomixError(f"{path} is missing; did this run validate at least once?")
    records: list[dict[str, Any]] = []
    index: dict[Any, int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise CocomixError(f"{path}:{number} is not valid JSON") from None
        step = record.get("Step")
        if step is not None and step in index:
            records[index[step]] = record
            continue
        if step is not None:
            index[step] = len(records)
        records.append(record)
    return records


def load_curves(info: RunInfo, arm: str) -> RunCurves:
    valid = [r for r in read_jsonl(info.path / "metrics" / "valid.jsonl") if "Loss" in r]
    if not valid:
        raise CocomixError(f"{info.path}/metrics/valid.jsonl has no validation loss records")
    by_step = {int(r["Step"]): r for r in valid}  # a resumed run may repeat a step: keep the last
    steps = sorted(by_step)
    train = [r for r in read_jsonl(info.path / "metrics" / "train.jsonl")
             if "Total Number of Elements" in r and r.get("Step")]
    if not train:
        raise CocomixError(f"{info.path}/metrics/train.jsonl records no token counts")
    tokens_per_step = float(train[0]["Total Number of Elements"]) / int(train[0]["Step"])
    flops, note = _flops_per_token(info.path)
    loss = np.array([float(by_step[s]["Loss"]) for s in steps])
    ppl = np.array([float(by_step[s].get("ppl", math.exp(by_step[s]["Loss"]))) for s in steps])
    return RunCurves(info, arm, np.array(steps, dtype=float), loss, ppl, tokens_per_step, flops,
                     note, read_config(info.path), train[-1])


def _flops_per_token(run_dir: Path) -> tuple[float | None, str]:
    """FLOPs per training token, or ``None`` and the reason (shown in the table, never hidden)."""
    from cocomix.runtime.run_flops import run_flops_per_token

    try:
        return run_flops_per_token(run_dir).total, ""
    except CocomixError as err:
        return None, str(err)


def arm_labels(runs: list[RunInfo]) -> list[str]:
    """``<arm>``, or ``<recipe>/<arm>`` when different recipes use the same arm name."""
    recipes_per_arm: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        recipes_per_arm[run.arm].add(run.recipe)
    return [f"{r.recipe}/{r.arm}" if len(recipes_per_arm[r.arm]) > 1 else r.arm for r in runs]


def arm_curves(runs: list[RunCurves]) -> dict[str, ArmCurve]:
    grouped: dict[str, list[RunCurves]] = defaultdict(list)
    for run in runs:
        grouped[run.arm].append(run)
    curves = {}
    for arm, members in grouped.items():
        shared = sorted(set.intersection(*(set(m.steps.tolist()) for m in members)))
        if not shared:
            raise CocomixError(f"the seeds of arm {arm!r} share no validation step; cannot band them")
        stack = np.stack([m.valid_loss[np.searchsorted(m.steps, shared)] for m in members])
        steps = np.array(shared)
        tps = statistics.fmean(m.tokens_per_step for m in members)
        fpt = [m.flops_per_token for m in members]
        flops = steps * tps * fpt[0] if all(f is not None for f in fpt) and len(set(fpt)) == 1 else None
        curves[arm] = ArmCurve(arm, steps, steps * tps, flops, stack.mean(0), stack.min(0),
                               stack.max(0), [m.info.seed for m in members])
    return curves


def reach(x: np.ndarray, loss: np.ndarray, target: float) -> float | None:
    """First ``x`` where ``loss`` falls to ``target``, linearly interpolated between validation
    points; ``None`` if it never does. At the first point it is that point's ``x`` (an upper
    bound: nothing was measured before it)."""
    below = np.nonzero(loss <= target)[0]
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(x[0])
    x0, x1, l0, l1 = x[i - 1], x[i], loss[i - 1], loss[i]
    return float(x0 + (l0 - target) / (l0 - l1) * (x1 - x0))


def savings(curves: dict[str, ArmCurve], baseline: str) -> list[dict[str, Any]]:
    """Per arm: tokens (and FLOPs) to reach the baseline's final mean validation loss."""
    if baseline not in curves:
        raise CocomixError(f"baseline arm {baseline!r} is not among the arms: {', '.join(curves)}")
    base = curves[baseline]
    target = float(base.mean[-1])
    rows = []
    for arm, curve in curves.items():
        tokens = reach(curve.tokens, curve.mean, target)
        row: dict[str, Any] = {"arm": arm, "target_loss": target, "tokens": tokens,
                               "baseline_tokens": float(base.tokens[-1])}
        row["tokens_saved"] = None if tokens is None else 1.0 - tokens / float(base.tokens[-1])
        if curve.flops is not None and base.flops is not None:
            flops = reach(curve.flops, curve.mean, target)
            row["flops"] = flops
            row["flops_saved"] = None if flops is None else 1.0 - flops / float(base.flops[-1])
        rows.append(row)
    return rows


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten_config(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): config}


def config_differences(runs: list[RunCurves]) -> dict[str, dict[str, str]]:
    """``{key: {arm: value}}`` for keys whose value is not the same in every run (values that
    vary within an arm are shown joined by ``/``)."""
    flats = [flatten_config(r.config) for r in runs]
    keys = sorted({k for f in flats for k in f if k.split(".")[0] not in IGNORED_CONFIG_KEYS})
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        values = [_show(f.get(key, "<unset>")) for f in flats]
        if len(set(values)) < 2:
            continue
        per_arm: dict[str, list[str]] = defaultdict(list)
        for run, value in zip(runs, values, strict=True):
            if value not in per_arm[run.arm]:
                per_arm[run.arm].append(value)
        out[key] = {arm: "/".join(v) for arm, v in per_arm.items()}
    return out


def _show(value: Any) -> str:
    return value if isinstance(value, str) and value else json.dumps(value, default=str)
