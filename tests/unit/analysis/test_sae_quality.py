"""The sae_quality report reads each arm's SAE training report; arms without an SAE are left out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cocomix.analysis.sae_quality import sae_quality


def test_one_row_per_arm_with_an_sae(tmp_path: Path, fake_run: Callable[..., Path]) -> None:
    sae = tmp_path / "saes" / "sae-x" / "sae.pt"
    sae.parent.mkdir(parents=True)
    sae.write_bytes(b"")
    report = {"layer": 3, "options": {"n_latents": 1024, "k": 16},
              "valid": {"fve": 0.95, "dead_fraction": 0.125, "dense_fraction": 0.0, "max_firing_rate": 0.37}}
    (sae.parent / "report.json").write_text(json.dumps(report))
    root = tmp_path / "runs" / "study" / "sweep"
    runs = [fake_run(root / "ntp" / "seed0", [5.0]),
            fake_run(root / "reference" / "seed0", [5.0], artifacts={"sae": str(sae)}),
            fake_run(root / "reference" / "seed1", [5.0], artifacts={"sae": str(sae)})]
    text = sae_quality(runs, tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "sae_quality.json").read_text())
    assert [r["arm"] for r in rows] == ["reference"]  # seeds share the SAE: one row
    assert "| reference | 3 | 1024 | 16 | 0.950 | 12.5% | 0.0% | 37.0% |" in text
