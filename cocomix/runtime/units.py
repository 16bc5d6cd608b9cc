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
from cocomix.types import LossOutput, ModelOutput, TokenBatch


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
        self._contract_checked = False

    def set_step_nr(self, step_nr: int) -> None:
        self._step_nr = step_nr
        self._losses = []

    def process_metric_values(self, values: MutableMapping[str, object]) -> None:
        # Training FLOPs so far (cocomix.runtime.flops), logged as perf/flops beside the tokens.
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
        for name in self._objective.contract.metric_names():
            metric_bag.add(name, Mean())
        _add_sums(metric_bag)

    def process_batch(self, batch: SequenceBatch, metric_bag: MetricBag) -> tuple[Tensor, None]:
        if self._contract_checked:
            out = self._objective.compute(self._lm, token_batch(batch))
        else:  # the first batch names a plugin objective that breaks its contract
            out = checked_objective_output(self._objective, self._lm, token_batch(batch))
            self._contract_checked = True
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


def checked_objective_output(objective: Objective, lm: DataParallelLM, batch: TokenBatch) -> LossOutput:
    """``objective.compute`` on one batch, with any breach of its contract (``LossOutput``: a
    scalar floating loss attached to the graph, a positive target count, declared metrics) as one
    line naming the objective, instead of a failure deep inside torch or fairseq2's trainer."""
    name = f"objective {objective.objective_name()!r} ({type(objective).__module__}.{type(objective).__qualname__})"
    try:
        out = objective.compute(lm, batch)
    except (CocomixError, MemoryError, torch.OutOfMemoryError):
        raise  # already named, or the machine's limit rather than the objective's code
    except Exception as err:  # noqa: BLE001 (user code: say whose code failed and where)
        import traceback

        frame = traceback.extract_tb(err.__traceback__)[-1]
        raise CocomixError(f"{name} raised {type(err).__name__}: {err} (at {frame.filename}:"
                           f"{frame.lineno}) on the first batch; fix its compute()") from err
    problem = _contract_problem(objective, out)
    if problem:
        raise CocomixError(f"{name}: compute() {problem}; it must return LossOutput(loss=<scalar "
                           f"tensor with grad>, num_targets=<int > 0>, metrics={{declared name: tensor}})")
    return out


def _contract_problem(objective: Objective, out: object) -> str | None:
    if not isinstance(out, LossOutput):
        return f"returned {type(out).__name__}, not LossOutput"
    loss = out.loss
    if not isinstance(loss, Tensor):
        return f"returned a loss of type {type(loss).__name__}, not a tensor"
    if loss.ndim != 0:
        return f"returned a loss of shape {tuple(loss.shape)}, not a scalar (take the mean)"
    if not loss.is_floating_point():
        return f"returned a {loss.dtype} loss, not a floating-point one"
    if not loss.requires_grad:
        return "returned a loss detached from the model (no gradient would reach the weights)"
    if not isinstance(out.num_targets, int) or isinstance(out.num_targets, bool) or out.num_targets <= 0:
        return f"returned num_targets={out.num_targets!r}, not a positive int"
    undeclared = sorted(set(out.metrics) - set(objective.contract.metric_names()))
    if undeclared:
        return f"returned metrics {undeclared} that its contract's metrics do not declare"
    return None


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
