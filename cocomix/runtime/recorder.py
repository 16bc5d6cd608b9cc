"""TensorBoard recorder with the project's tag names, one event stream per run.

fairseq2's own TensorBoard recorder writes one writer per category and uses display names; we
want stable, namespaced tags (`train/loss`, `valid/ppl`, `optim/lr`, `perf/tokens_per_s`) in a
single `tb/` folder so `tensorboard --logdir runs/<recipe>` overlays arms and seeds by run folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from fairseq2.metrics.recorders import MetricRecorder
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

# fairseq2 metric name -> our tag, per category. Unlisted names keep `<category>/<name>`.
_RENAMES: dict[str, str] = {
    "train/lr": "optim/lr",
    "train/grad_norm": "optim/grad_norm",
    "train/elements_per_second": "perf/tokens_per_s",
    "train/total_num_elements": "perf/tokens",
    "train/total_flops": "perf/flops",
    "train/wall_time": "perf/wall_time",
}
# Bookkeeping that would only clutter the dashboards.
_SKIP = {"data_epoch", "num_elements", "elements_per_batch", "batch_size", "lapse_time", "total_time"}


class ProjectTensorBoardRecorder(MetricRecorder):
    def __init__(self, output_dir: Path, config_text: str | None = None) -> None:
        self._writer = SummaryWriter(str(output_dir / "tb"))
        if config_text is not None:
            # Markdown code block so TensorBoard's text tab keeps the YAML layout.
            self._writer.add_text("config", "```yaml\n" + config_text + "\n```", 0)
            self._writer.flush()

    def record_metric_values(
        self, category: str, values: Mapping[str, object], step_nr: int | None = None
    ) -> None:
        for name, value in values.items():
            if name in _SKIP:
                continue
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    continue
                value = value.item()
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if not math.isfinite(float(value)):
                continue
            key = f"{category}/{name}"
            self._writer.add_scalar(_RENAMES.get(key, key), float(value), step_nr)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
