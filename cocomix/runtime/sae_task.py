"""`task: sae` recipes: train (or reuse) the concept SAE and report its quality in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from cocomix.cache_files import atomic_write_text
from cocomix.runtime.artifacts import prepare_data
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.concept_artifacts import ensure_sae, ensure_teacher
from cocomix.runtime.world import use_threads


def train_sae_task(composed: ComposedRecipe, run_dir: Path, cache_dir: Path) -> dict[str, object]:
    """The same artifact a concept recipe would build, plus `sae_report.json` in the run folder."""
    use_threads(int(composed.cfg.threads))
    data = prepare_data(composed, cache_dir)
    sae = ensure_sae(composed, cache_dir, ensure_teacher(composed, cache_dir, data), data)
    report = {**sae.report, "artifact": sae.identity, "path": str(sae.path)}
    atomic_write_text(run_dir / "sae_report.json", json.dumps(report, indent=2) + "\n")
    valid = report.get("valid", {})
    if isinstance(valid, dict) and valid:
        print(
            f"sae: held-out normalised MSE {valid['nmse']:.4f}, variance explained "
            f"{valid['fve']:.4f}, dead latents {valid.get('dead_fraction', float('nan')):.3f}"
        )
    return report
