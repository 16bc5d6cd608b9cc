"""The console a person reads: about ten progress lines a run off a terminal, one redrawn line on
a terminal, validation losses, and one seed printed without a spread."""

from __future__ import annotations

import io

import torch

from cocomix.analysis.seed_stats import spread
from cocomix.runtime.console import PRINTED_LINES_PER_RUN, ProgressRecorder


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(recorder: ProgressRecorder, steps: int, validate_every: int) -> None:
    for step in range(1, steps + 1):
        recorder.record_metric_values(
            "train", {"loss": torch.tensor(9.0 - step / 100, dtype=torch.float64),
                      "elements_per_second": 2048.0}, step)
        if step % validate_every == 0:
            recorder.record_metric_values("valid", {"loss": 7.25, "ppl": 1408.1}, step)
    recorder.close()


def test_off_a_terminal_a_run_prints_about_ten_progress_lines_and_each_validation() -> None:
    out = io.StringIO()
    feed(recorder := ProgressRecorder("[add/seed0]", 200, stream=out), 200, validate_every=50)
    lines = out.getvalue().splitlines()
    progress = [line for line in lines if "/200" in line]
    assert [line.split()[2] for line in progress] == ["1/200"] + [f"{s}/200" for s in range(20, 201, 20)]
    assert len(progress) == PRINTED_LINES_PER_RUN + 1
    assert progress[0] == "[add/seed0] step 1/200  loss 8.9900  2,048 tok/s"
    assert progress[-1].startswith("[add/seed0] step 200/200  loss 7.0000") and "0s left" in progress[-1]
    assert [line for line in lines if "valid" in line] == [
        f"[add/seed0] step {s}: valid loss 7.2500 (ppl 1408.1)" for s in (50, 100, 150, 200)]
    assert "tensor(" not in out.getvalue() and recorder is not None


def test_on_a_terminal_the_progress_line_is_redrawn_in_place() -> None:
    out = Terminal()
    feed(ProgressRecorder("[ntp/seed1]", 40, stream=out), 40, validate_every=20)
    text = out.getvalue()
    assert text.count("\r\033[2K") == 40 + 2  # every step redraws; each validation replaces it
    assert text.count("\n") == 2 + 0 and text.endswith("valid loss 7.2500 (ppl 1408.1)\n")


def test_one_seed_has_no_spread() -> None:
    assert spread(6.26552, 0.0, 1, ".4f") == "6.2655"
    assert spread(6.26552, 0.01, 3, ".4f") == "6.2655 ± 0.0100"
