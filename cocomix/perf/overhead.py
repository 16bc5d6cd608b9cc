"""Framework overhead: the full runtime (Hydra, fairseq2 Trainer, data pipeline, metric
recording) against a bare PyTorch loop over the same model and batches, in the same process.

The two are interleaved step by step so that a busy machine slows both alike: a probe hooked
into `ObjectiveTrainUnit.set_step_nr` (called once per optimizer step, after the trainer read the
step's batches) runs one bare step on a copy of the runtime's model, using the batches the runtime
used in the previous step. A runtime step is timed from the probe's exit to its next entry, so it
covers the trainer's whole cycle (forward, backward, clipping, AdamW, LR schedule, metric bag,
publishing, reading the next batches) and nothing of the bare step.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cocomix.runtime import units


@dataclass
class Probe:
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    max_grad_norm: float
    runtime_s: list[float] = field(default_factory=list)
    bare_s: list[float] = field(default_factory=list)
    tokens_per_step: int = 0
    _bare: nn.Module | None = None
    _opt: torch.optim.Optimizer | None = None
    _batches: list[Any] = field(default_factory=list)
    _pending: list[Any] = field(default_factory=list)
    _exit: float | None = None

    def bare_step(self, unit: units.ObjectiveTrainUnit) -> None:
        """One plain-PyTorch optimizer step over the previous step's micro-batches."""
        if self._bare is None:
            self._bare = copy.deepcopy(unit._lm._module)
            self._opt = torch.optim.AdamW(self._bare.parameters(), lr=self.lr, betas=self.betas,
                                          eps=self.eps, weight_decay=self.weight_decay)
        assert self._opt is not None
        lm = units.DataParallelLM(self._bare)
        for batch in self._batches:
            out = unit._objective.compute(lm, units.token_batch(batch))
            (out.loss / len(self._batches)).backward()
        nn.utils.clip_grad_norm_(self._bare.parameters(), self.max_grad_norm)
        self._opt.step()
        self._opt.zero_grad(set_to_none=True)

    def on_step(self, unit: units.ObjectiveTrainUnit) -> None:
        entered = time.perf_counter()
        if self._exit is not None:
            self.runtime_s.append(entered - self._exit)
        # The micro-batches the runtime processed since the last probe: the previous step's.
        self._batches, self._pending = self._pending, []
        if self._batches:
            self.tokens_per_step = sum(int(b.seqs[:, :-1].numel()) for b in self._batches)
            start = time.perf_counter()
            self.bare_step(unit)
            self.bare_s.append(time.perf_counter() - start)
        self._exit = time.perf_counter()


def _install(probe: Probe) -> tuple[Any, Any]:
    cls = units.ObjectiveTrainUnit
    original_set, original_process = cls.set_step_nr, cls.process_batch

    def set_step_nr(self: units.ObjectiveTrainUnit, step_nr: int) -> None:
        original_set(self, step_nr)
        probe.on_step(self)

    def process_batch(self: units.ObjectiveTrainUnit, batch: Any, bag: Any) -> Any:
        probe._pending.append(batch)
        return original_process(self, batch, bag)

    cls.set_step_nr = set_step_nr  # type: ignore[method-assign]
    cls.process_batch = process_batch  # type: ignore[method-assign]
    return original_set, original_process


def measure_overhead(overrides: list[str], steps: int, warmup: int,
                     runs_dir: Path | None = None) -> dict[str, Any]:
    """Train `pretrain/ntp` for `steps` through the runtime with the probe installed."""
    from cocomix.runtime.compose import compose_recipe
    from cocomix.experiment import run_recipe

    log_every = max(1, steps // 2)
    run_overrides = [*overrides, f"steps={steps}", f"checkpoint_every={steps}",
                     f"validate_every={steps}", f"log_every={log_every}", "train.warmup_steps=1",
                     "valid.max_batches=1"]
    train = compose_recipe("pretrain/ntp", run_overrides).cfg.train
    probe = Probe(float(train.lr), (float(train.beta1), float(train.beta2)), float(train.eps),
                  float(train.weight_decay), float(train.max_grad_norm))
    cls = units.ObjectiveTrainUnit
    original_set, original_process = _install(probe)
    try:
        with tempfile.TemporaryDirectory(prefix="cocomix-bench-") as tmp:
            run_recipe("pretrain/ntp", run_overrides, runs_dir or Path(tmp))
    finally:
        cls.set_step_nr, cls.process_batch = original_set, original_process  # type: ignore[method-assign]
    # runtime_s[i] is step i+1 (its cycle ends at probe i+2); the last step also checkpoints and
    # validates and has no following probe. bare_s[i] replays step i+1's batches.
    pairs = list(zip(probe.runtime_s, probe.bare_s))[warmup:]
    if not pairs:
        raise RuntimeError(f"no timed steps: {steps} steps with {warmup} warm-up")
    runtime = statistics.median(p[0] for p in pairs)
    bare = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    return {
        "steps_timed": len(pairs),
        "tokens_per_step": probe.tokens_per_step,
        "runtime_step_s": runtime,
        "bare_step_s": bare,
        "runtime_tokens_per_s": probe.tokens_per_step / runtime,
        "bare_tokens_per_s": probe.tokens_per_step / bare,
        "overhead": ratio - 1.0,
        # Best steps: the least disturbed by other processes (a cross-check on a busy machine).
        "overhead_of_fastest": min(p[0] for p in pairs) / min(p[1] for p in pairs) - 1.0,
    }

