"""An lm-eval ``LM`` for any cocomix checkpoint, so the paper's suite runs unchanged.

The paper evaluates with lm-eval-harness zero-shot (``lambada_openai``, ``wikitext``,
``hellaswag``, ``piqa``, ``social_iqa``, ``arc_easy``, ``winogrande``; brief §4.1). With network
access (for the datasets) a user runs those tasks on our models; offline, a task YAML that points
at a local JSONL (``dataset_path: json``, ``dataset_kwargs: {data_files: ...}``) works the same.

    from cocomix.eval.lm_eval_adapter import CocomixEvalLM, run_lm_eval
    lm = CocomixEvalLM(run_dir="runs/pretrain/cocomix/main/seed22")
    lm_eval.simple_evaluate(model=lm, tasks=["hellaswag"])

Importing this module registers the model as ``cocomix`` in lm-eval's registry, so
``simple_evaluate(model="cocomix", model_args="run_dir=...,step=200")`` works too.

Conventions (the same engine as the offline suite, ``cocomix.eval.scoring``): the context
window is the run's *training* length ``train.seq_len`` (positions beyond it were never
trained), EOS stands in for an empty context and for lm-eval's rolling-window prefix, and
generation is greedy unless a task asks for sampling.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cocomix.eval.loading import LoadedRun, load_run
from cocomix.eval.scoring import LogLikelihoodScorer, split_pair
from cocomix.registry import CocomixError, first_line

try:
    from lm_eval import utils as lm_utils
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model
except ImportError as err:  # pragma: no cover - lm-eval is a declared dependency
    raise CocomixError(
        f"the lm-eval adapter needs lm-eval ({err}); install it with "
        f"`pip install lm-eval==0.4.13` (pinned in pyproject.toml)"
    ) from None


@register_model("cocomix")
class CocomixEvalLM(LM):
    """lm-eval's three request types on a cocomix model (``LoadedRun`` or a run folder)."""

    def __init__(
        self,
        run_dir: str | Path | None = None,
        step: int | str | None = None,
        batch_size: int | str = 16,
        device: str = "cpu",
        max_gen_toks: int | str = 64,
        tokenizer: str | None = None,
        *,
        loaded: LoadedRun | None = None,
    ) -> None:
        super().__init__()
        if loaded is None:
            if run_dir is None:
                raise CocomixError("CocomixEvalLM needs run_dir=... (or a LoadedRun)")
            loaded = load_run(run_dir, step=None if step in (None, "") else int(step),
                              tokenizer=tokenizer, device=device)
        self.run = loaded
        self.tok = loaded.tokenizer
        self.max_length = loaded.seq_len
        self.max_gen_toks = int(max_gen_toks)
        self.batch_size = int(batch_size)
        self._device = next(loaded.model.parameters()).device  # where the model already is
        self.scorer = LogLikelihoodScorer(loaded.model, max_len=self.max_length,
                                          batch_size=self.batch_size, pad_id=self.tok.eos_id,
                                          device=self._device)

    @property
    def tokenizer_name(self) -> str:
        return str(self.tok.path)

    @property
    def eot_token_id(self) -> int:
        return self.tok.eos_id

    # -- lm-eval's request types ------------------------------------------------------------

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [split_pair(self.tok, *req.args) for req in requests]
        scores = self.scorer.score_tokens(pairs, desc="lm-eval loglikelihood")
        return [(s.logprob, s.is_greedy) for s in scores]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Sum of log-probabilities of each whole string in disjoint windows of ``max_length``,
        each window with as much preceding context as fits (lm-eval's rolling scheme)."""
        windows: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        for i, req in enumerate(requests):
            (text,) = req.args
            tokens = self.tok.encode(text)
            for window in lm_utils.get_rolling_token_windows(
                token_list=tokens, prefix_token=self.tok.eos_id, max_seq_len=self.max_length,
                context_len=1,
            ):
                windows.append(lm_utils.make_disjoint_window(window))
                owners.append(i)
        totals = [0.0] * len(requests)
        for owner, score in zip(owners, self.scorer.score_tokens(windows, desc="lm-eval rolling"), strict=True):
            totals[owner] += score.logprob
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        from cocomix.models import generate

        out = []
        for req in tqdm(requests, desc="lm-eval generate", disable=disable_tqdm or None):
            context, gen_kwargs = req.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", kwargs.pop("max_new_tokens", self.max_gen_toks)))
            if max_new >= self.max_length:
                raise CocomixError(
                    f"max_gen_toks={max_new} leaves no room for context in the model's "
                    f"{self.max_length}-token window"
                )
            do_sample = bool(kwargs.pop("do_sample", False))
            temperature = float(kwargs.pop("temperature", 1.0 if do_sample else 0.0))
            greedy = not do_sample or temperature == 0.0
            ids = (self.tok.encode(context) if context else [self.tok.eos_id])
            ids = ids[-(self.max_length - max_new):]
            prompt = torch.tensor([ids], dtype=torch.long, device=self._device)
            tokens = generate(self.run.model, prompt, max_new, greedy=greedy,
                              temperature=temperature if not greedy else 1.0)
            text = self.tok.decode(_cut_at_eos(tokens[0, len(ids):].tolist(), self.tok.eos_id))
            for stop in until:
                if stop and stop in text:
                    text = text.split(stop, 1)[0]
            out.append(text)
        return out


def _cut_at_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


PAPER_TASKS: tuple[str, ...] = (
    "lambada_openai", "wikitext", "hellaswag", "piqa", "social_iqa", "arc_easy", "winogrande",
)
"""The paper's lm-eval suite, zero-shot (brief §4.1)."""


def run_lm_eval(
    run: LoadedRun,
    tasks: Sequence[str],
    *,
    include_path: Path | str | None = None,
    limit: int | None = None,
    batch_size: int = 16,
) -> dict[str, dict[str, Any]]:
    """Run lm-eval ``tasks`` zero-shot on ``run``; returns ``{task: {metric: value}}``.

    Tasks are looked up in ``include_path`` first (local YAMLs) and in lm-eval's built-in
    tasks only when some are not found there (indexing the built-ins takes ~10 s). Built-in
    tasks download their datasets: they need the Hugging Face hub or a populated HF cache, and
    when neither is there the answer is one ``CocomixError`` saying so.
    """
    import lm_eval

    if not tasks:
        raise CocomixError("no lm-eval task names given")
    manager = _task_manager(str(include_path) if include_path else "", tuple(tasks))
    missing = [t for t in tasks if t not in manager.all_tasks]
    if missing:
        raise CocomixError(f"lm-eval knows no task {', '.join(missing)}; check --lm-eval-include")
    try:
        results = lm_eval.simple_evaluate(
            model=CocomixEvalLM(loaded=run, batch_size=batch_size), tasks=list(tasks),
            task_manager=manager, limit=limit, log_samples=False, bootstrap_iters=0,
        )
    except (ConnectionError, FileNotFoundError) as err:  # a data set neither reachable nor cached
        raise _unreachable(tasks, err) from err
    if results is None:
        raise CocomixError("lm-eval returned no results")
    # lm-eval keys are "<metric>,<filter>"; keep the numbers (not "N/A" stderrs or names).
    return {
        task: {k.split(",")[0]: float(v) for k, v in metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "sample_len"}
        for task, metrics in results["results"].items()
    }


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: str, tasks: tuple[str, ...]) -> Any:
    """Local YAMLs alone when they hold every task, else with lm-eval's built-ins; kept, so that
    evaluating several runs indexes the built-ins once."""
    from lm_eval.tasks import TaskManager

    if include_path:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if all(t in local.all_tasks for t in tasks):
            return local
    return TaskManager(include_path=include_path or None)


def _unreachable(tasks: Sequence[str], err: BaseException) -> CocomixError:
    first = first_line(err)
    offline = [n for n in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(n, "") not in ("", "0")]
    why = f"offline mode is on ({', '.join(f'{n}=1' for n in offline)})" if offline else "no network"
    return CocomixError(
        f"lm-eval data sets are not available: {why} and they are not in the Hugging Face cache "
        f"({first}). Run {','.join(tasks)} where the hub is reachable (HF_DATASETS_OFFLINE and "
        f"HF_HUB_OFFLINE unset), copy a filled HF cache (HF_HOME), or give local task YAMLs "
        f"with --lm-eval-include"
    )
