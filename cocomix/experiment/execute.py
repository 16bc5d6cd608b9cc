"""The experiment layer's execution: train the plan's teachers, then every (arm, seed) run into
its folder under its lock, then the recipe's summary and reports."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path

from cocomix.analysis.reports import check_reports, recipe_report
from cocomix.cache_files import atomic_write_text
from cocomix.experiment.plan import PlannedRun, plan_runs, teacher_nodes
from cocomix.experiment.summary import summarize
from cocomix.registry import CocomixError
from cocomix.runtime.artifacts import artifact_dir
from cocomix.runtime.teacher_sources import TeacherRun
from cocomix.runtime.launch import run_task, train_lm
from cocomix.runtime.preflight import check_run
from cocomix.runtime.run_lock import RunLock
from cocomix.runtime.rundir import RunDir
from cocomix.runtime.world import is_rank_zero, use_threads


class RunInterrupted(Exception):
    """Ctrl-C during a run: where it stopped, so the command line can say how to resume."""

    def __init__(self, run_dir: Path, last_step: int | None) -> None:
        super().__init__(str(run_dir))
        self.run_dir = run_dir
        self.last_step = last_step


def run_recipe(recipe: str, overrides: list[str], runs_dir: Path) -> list[RunDir]:
    """Train every (arm, seed) of a recipe; finished runs are skipped, interrupted ones resume."""
    plans = plan_runs(recipe, overrides)
    for plan in plans:  # fail on any bad arm or report name before spending time on the first
        check_run(plan.composed)
        check_reports(list(plan.composed.cfg.reports))
    baseline = str(plans[0].composed.cfg.baseline_arm)
    if baseline and baseline not in {plan.arm for plan in plans}:
        raise CocomixError(f"baseline_arm={baseline!r} is not among the arms to run "
                           f"{sorted({plan.arm for plan in plans})}; name one of them or leave it empty")
    cache_dir = artifact_dir(runs_dir)
    pending = [plan for plan in plans if not _finished(plan, RunDir.of(runs_dir, recipe, plan.arm, plan.seed))]
    for node in teacher_nodes(pending, cache_dir):  # the plan's artifact nodes, before its runs
        train_teacher(node, cache_dir)
    done = []
    # Global rank 0 (torchrun's RANK, srun's SLURM_PROCID) owns (locks, checks, writes) folders.
    owner = is_rank_zero()
    for plan in plans:
        run_dir = RunDir.of(runs_dir, recipe, plan.arm, plan.seed)
        if owner and _finished(plan, run_dir) and not os.access(run_dir.path, os.W_OK):
            # A finished run in a read-only folder: nothing to write, so no lock to take.
            run_dir.check_same_config(plan.composed.resolved())
            _say_finished(plan, run_dir)
            done.append(run_dir)
            continue
        with RunLock(run_dir.path) if owner else nullcontext():
            try:
                _run_one(plan, run_dir, cache_dir, owner=owner)
            except KeyboardInterrupt:
                raise RunInterrupted(run_dir.path, run_dir.last_checkpoint_step()) from None
        done.append(run_dir)
    top = plans[0].composed.cfg
    # The summary reads the finished folders and writes beside them: the owner's work alone, or
    # under torchrun every rank would score and write the same files.
    if owner and (len(plans) > 1 or top.reports):
        out_dir = runs_dir / recipe
        print(summarize(recipe, done, out_dir, held_out_tokens=int(top.summary_test_tokens)))
        report = recipe_report([run.path for run in done], out_dir,
                               baseline=str(top.baseline_arm), reports=list(top.reports))
        summary_md = out_dir / "summary.md"
        atomic_write_text(summary_md, summary_md.read_text() + "\n" + report)
        print(report)
    return done


def _finished(plan: PlannedRun, run_dir: RunDir) -> bool:
    last = run_dir.last_checkpoint_step()
    target = int(plan.composed.cfg.stop_at or plan.composed.cfg.steps)
    return plan.composed.cfg.task == "lm" and last is not None and last >= target


def _say_finished(plan: PlannedRun, run_dir: RunDir) -> None:
    print(f"[{plan.arm}/seed{plan.seed}] already at step {run_dir.last_checkpoint_step()}; nothing to do")


def _run_one(plan: PlannedRun, run_dir: RunDir, cache_dir: Path, *, owner: bool) -> None:
    """Train one (arm, seed) into its folder, or say that it is already done."""
    label = f"[{plan.arm}/seed{plan.seed}]"
    use_threads(int(plan.composed.cfg.threads))  # before env.json records the count
    resuming = run_dir.prepare(plan.composed.resolved(), owner=owner)
    last = run_dir.last_checkpoint_step()
    if _finished(plan, run_dir):
        _say_finished(plan, run_dir)
        return
    if resuming:
        print(f"{label} resuming from step {last} in {run_dir.path}")
    start = time.perf_counter()
    run_task(plan.composed, run_dir.path, cache_dir)
    print(f"{label} done in {time.perf_counter() - start:.0f}s: {run_dir.path}")


def train_teacher(node: TeacherRun, cache_dir: Path) -> None:
    """Train a teacher run the plan needs, unless it is trained; runs that need the same teacher
    at once wait for the one that trains it. Under torchrun or srun only rank 0 locks: the other
    ranks train with it (they would deadlock waiting on it)."""
    if node.trained():
        return
    with RunLock(node.run_dir, wait=True, what="teacher") if is_rank_zero() else nullcontext():
        if not node.trained():
            print(f"teacher: training {node.name} into {node.run_dir}")
            train_lm(node.recipe, node.run_dir, cache_dir)
