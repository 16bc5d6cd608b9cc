"""fairseq2 train/eval units that delegate the loss to a registered objective."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from pathlib import Path

import torch
from fairseq2.checkpoint import CheckpointManager
from fairseq2.datasets import SequenceBatch
from fairseq2.metrics import MetricBag
from fairseq2.metrics.aggregation import Mean, Sum
from fairseq2.recipe import EvalUnit, TrainUnit
from torch import Tensor, nn
from torch.optim import Optimizer

from cocomix.objectives.base import Objective
from cocomix.objectives.terms import next_token_loss
from cocomix.registry import CocomixError
from cocomix.types import ModelOutput, TokenBatch


class DataParallelLM:
    """The student as an objective sees it, called through the data-parallel wrapper.

    DDP and FSDP hook the wrapper's ``__call__``; calling a plain method of the inner module would
    skip gradient synchronisation or parameter gathering, so ``forward_lm`` goes through it.
    """

    def __init__(self, module: nn.Module) -> None:
        self._module = module

    def forward_lm(self, tokens: Tensor) -> ModelOutput:
        out = self._module(tokens)  # no layout: CocoMixLM.forward returns a ModelOutput
        assert isinstance(out, ModelOutput)
        return out


def token_batch(batch: SequenceBatch) -> TokenBatch:
    example = batch.example if isinstance(batch.example, dict) else {}
    index = example.get("sample_index")
    return TokenBatch(batch.seqs, None if index is None else torch.as_tensor(index))


def _add_sums(bag: MetricBag) -> None:
    bag.add("num_elements", Sum())
    bag.add("total_num_elements", Sum())


class DivergenceError(CocomixError):
    """The loss became NaN or infinite; raised before the bad step can touch the weights."""


class ObjectiveTrainUnit(TrainUnit[SequenceBatch]):
    def __init__(
        self, model: nn.Module, objective: Objective, checkpoint_dir: Path, flops_per_token: float,
        accumulate: int = 1, checkpoints: CheckpointManager | None = None,
    ) -> None:
        self._lm = DataParallelLM(model)
        self._objective = objective
        self._checkpoint_dir = checkpoint_dir
        self._checkpoints = checkpoints
        self._flops_per_token = flops_per_token
        self._accumulate = accumulate
        self._step_nr = 0
        self._losses: list[Tensor] = []

    def set_step_nr(self, step_nr: int) -> None:
        self._step_nr = step_nr
        self._losses = []

    def process_metric_values(self, values: MutableMapping[str, object]) -> None:
        # Training FLOPs so far (cocomix.analysis.flops), logged as perf/flops beside the tokens.
        tokens = values.get("total_num_elements")
        if isinstance(tokens, Tensor):
            tokens = tokens.item()
        if isinstance(tokens, (int, float)):
            values["total_flops"] = float(tokens) * self._flops_per_token

    def _check_finite(self, loss: Tensor) -> None:
        # Read on the host once per optimizer step, at its last micro-batch (before that
        # micro-batch's backward and the optimizer): a GPU sync per micro-batch would drain the
        # kernel queue grad_accum times a step. A bad step still never touches the weights.
        self._losses.append(loss.detach())
        if len(self._losses) < self._accumulate:
            return
        losses = torch.stack(self._losses)
        if bool(torch.isfinite(losses).all()):
            return
        loss = losses[~torch.isfinite(losses)][0]
        raise self._divergence(f"the loss is {loss.item()}")

    def check_gradients(self, optimizer: Optimizer, *_: object) -> None:
        """Optimizer step pre-hook: a finite loss can still give non-finite gradients (an
        overflow in backward), and stepping on them would put NaN weights in the next checkpoint.
        One fused norm over all gradients (after clipping, which spreads a NaN to all of them)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads and not bool(torch.isfinite(torch.nn.utils.get_total_norm(grads))):
            raise self._divergence("the gradient norm is not finite")

    def _divergence(self, what: str) -> DivergenceError:
        from cocomix.runtime.checkpoint import checkpoint_steps

        if self._checkpoints is not None:
            # fairseq2 saves in the background and renames the step folder into place at its
            # next save; stopping now would leave the last good checkpoint as step_N.tmp.
            self._checkpoints.maybe_complete_save_operation(blocking=True)
        run_dir = self._checkpoint_dir.parent
        steps = checkpoint_steps(run_dir)
        last = f"step {steps[-1]} in {self._checkpoint_dir}" if steps else "none yet"
        # Rerunning the same command resumes from that checkpoint, but on CPU the run is
        # deterministic and diverges again; a changed train.lr is another experiment, which the
        # run folder refuses, so the fix goes into a fresh folder.
        return DivergenceError(
            f"{what} at step {self._step_nr}; training stopped before this step updated the "
            f"weights (last good checkpoint: {last}). Lower train.lr or raise train.warmup_steps "
            f"and run into a new --runs-dir (or delete {run_dir})"
        )

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        metric_bag.add("loss", Mean())
        for name in self._objective.metric_names:
            metric_bag.add(name, Mean())
        _add_sums(metric_bag)

    def process_batch(self, batch: SequenceBatch, metric_bag: MetricBag) -> tuple[Tensor, None]:
        out = self._objective.compute(self._lm, token_batch(batch))
        self._check_finite(out.loss)
        with torch.no_grad():
            n = out.num_targets
            metric_bag.get("loss", Mean).update(out.loss.detach(), weight=n)
            for name, value in out.metrics.items():
                metric_bag.get(name, Mean).update(value.detach(), weight=n)
            metric_bag.get("num_elements", Sum).update(torch.tensor(n))
            metric_bag.get("total_num_elements", Sum).update(torch.tensor(n))
        # A mean over equal-sized micro-batches: the trainer divides by the accumulation count.
        return out.loss, None


class ValidationUnit(EvalUnit[SequenceBatch]):
    """Held-out next-token loss and perplexity of the student as it is used at inference."""

    def __init__(self, model: nn.Module) -> None:
        self._lm = DataParallelLM(model)

    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        metric_bag.add("loss", Mean())
        metric_bag.add("num_tokens", Sum())

    @torch.no_grad()
    def process_batch(self, batch: SequenceBatch, metric_bag: MetricBag) -> None:
        tokens = batch.seqs
        out = self._lm.forward_lm(tokens[:, :-1])
        targets = tokens[:, 1:]
        loss = next_token_loss(out.logits, targets)
        metric_bag.get("loss", Mean).update(loss, weight=targets.numel())
        metric_bag.get("num_tokens", Sum).update(torch.tensor(targets.numel()))

    def process_metric_values(self, values: MutableMapping[str, object]) -> None:
        loss = values.get("loss")
        if isinstance(loss, Tensor):
            loss = loss.item()
        if isinstance(loss, float):
            values["ppl"] = math.exp(min(loss, 50.0))
