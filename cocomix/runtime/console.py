"""What a person sees while a run trains: a progress line per run, validation losses, nothing else.

fairseq2 logs every metric publication, its full config and its setup steps on the console. All
of that still goes to the run's log file (``<run>/logs/``) but not to the console, unless
``recipes.run --verbose`` asks for it; errors reach the user as exceptions either way.
The progress itself comes from ``ProgressRecorder``, a metric recorder like the TensorBoard one:
on a terminal one line redrawn in place (step, loss, tokens/s, time left); elsewhere (CI, a log
file) about ten lines a run.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from fairseq2.metrics import format_as_float
from fairseq2.metrics.recorders import MetricDescriptor, MetricRecorder
from fairseq2.runtime.dependency import DependencyContainer
from torch import Tensor

from cocomix.runtime.world import is_rank_zero

_VERBOSE = False
PRINTED_LINES_PER_RUN = 10
"""Progress lines a run prints when the console is not a terminal (plus one for its first step)."""


def set_verbose(verbose: bool) -> None:
    """``--verbose``: keep fairseq2's own INFO log (metrics, config dump) on the console."""
    global _VERBOSE
    _VERBOSE = verbose


@contextmanager
def quiet_fairseq2() -> Iterator[None]:
    """While fairseq2 trains: its console output and the warnings of dependencies stay off the
    console (its file log in ``<run>/logs/`` keeps everything), unless ``--verbose``.

    fairseq2 logs through a rich ``Console`` of its own on stderr (``get_error_console``), set up
    anew by every ``run()``, so that console is muted rather than its handler; warnings are
    routed to logging, which ends on the same muted console.
    """
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        if _VERBOSE:
            yield
            return
        from fairseq2.utils.rich import get_error_console

        console = get_error_console()
        muted = console.quiet
        console.quiet = True
        logging.captureWarnings(True)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            console.quiet = muted
    finally:
        # fairseq2's run() replaces the root logger's handlers with its console handler; put
        # back what was there, so the rest of the process logs as it did before.
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def show_build_messages() -> None:
    """The project's own INFO messages (a tokenizer trained, a shard built) as plain lines on
    stderr; called once by the command line. Idempotent."""
    logger = logging.getLogger("cocomix")
    if any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _number(value: object) -> float | None:
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressRecorder(MetricRecorder):
    """Turns fairseq2's metric publications into a progress line and validation lines."""

    def __init__(self, label: str, total_steps: int, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = total_steps
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._start: tuple[float, int] | None = None
        self._next_print = 0
        self._line_open = False

    def record_metric_values(
        self, category: str, values: Mapping[str, object], step_nr: int | None = None
    ) -> None:
        if step_nr is None:
            return
        if category == "train":
            self._train(values, step_nr)
        elif category == "valid":
            loss, ppl = _number(values.get("loss")), _number(values.get("ppl"))
            if loss is not None:
                shown = f"{loss:.4f}" + (f" (ppl {ppl:.1f})" if ppl is not None else "")
                self._write(f"{self._label} step {step_nr}: valid loss {shown}", final=True)

    def _train(self, values: Mapping[str, object], step: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, step)  # a resumed run starts counting at its first new step
        left = ""
        start_time, start_step = self._start
        if step > start_step:
            per_step = (now - start_time) / (step - start_step)
            left = f", {_duration(per_step * max(self._total - step, 0))} left"
        loss, speed = _number(values.get("loss")), _number(values.get("elements_per_second"))
        text = (f"{self._label} step {step}/{self._total}"
                + (f"  loss {loss:.4f}" if loss is not None else "")
                + (f"  {speed:,.0f} tok/s" if speed is not None else "") + left)
        if self._tty:
            self._write(text, final=False)
        elif step >= self._next_print or step >= self._total:
            every = max(1, self._total // PRINTED_LINES_PER_RUN)
            self._next_print = (step // every + 1) * every  # the first step, then round steps
            self._write(text, final=True)

    def _write(self, text: str, *, final: bool) -> None:
        if self._tty:
            # Redraw the progress line in place; a validation line replaces it and stays.
            self._stream.write("\r\033[2K" + text + ("\n" if final else ""))
            self._line_open = not final
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._line_open:
            self._stream.write("\n")
            self._stream.flush()
            self._line_open = False


def register_console(
    container: DependencyContainer, label: str, total_steps: int, metric_names: Iterable[str] = ()
) -> None:
    """From a recipe's ``register``: add the progress recorder (rank 0) and give our metrics
    number formats for the log file.

    Without a descriptor fairseq2 logs a metric as ``tensor(6.49, dtype=torch.float64)``. The
    display name is the metric's name and 999 fairseq2's priority for unknown names, so
    ``metrics/*.jsonl`` keep their keys and their order.
    """
    if is_rank_zero():
        container.collection.register(
            MetricRecorder, lambda _: ProgressRecorder(label, total_steps))
    for name in (*metric_names, "total_flops", "ppl", "num_tokens"):
        container.collection.register_instance(
            MetricDescriptor, MetricDescriptor(name, name, 999, format_as_float))


__all__ = ["ProgressRecorder", "quiet_fairseq2", "register_console", "set_verbose", "show_build_messages"]
