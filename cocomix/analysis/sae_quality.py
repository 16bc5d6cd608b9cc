"""``sae_quality`` report: the SAE behind each arm's labels, as its training report measured it.

Reads ``artifacts.json`` -> the SAE file -> ``report.json`` beside it (written when the SAE was
trained, ``cocomix.runtime.concept_artifacts``): held-out fraction of variance explained, dead
latents (never active on held-out activations), dense latents (active on more than 10% of them,
features of everything that make poor labels) and the busiest latent's firing rate. Arms without
an SAE (NTP, KD) are left out; arms that share an SAE show the same row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cocomix.eval.loading import run_info
from cocomix.runtime.rundir import read_artifacts, read_config


def sae_rows(runs: list[Path]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        sae = read_artifacts(run).get("sae")
        if not sae:
            continue
        arm = run_info(run).arm
        report_file = Path(sae).parent / "report.json"
        report = json.loads(report_file.read_text()) if report_file.is_file() else {}
        valid = report.get("valid", {})
        config = read_config(run)
        rows[(arm, sae)] = {
            "arm": arm, "sae": sae, "layer": report.get("layer", (config.get("teacher") or {}).get("layer")),
            "n_latents": (report.get("options") or {}).get("n_latents"), "k": (report.get("options") or {}).get("k"),
            "fve": valid.get("fve"), "dead_fraction": valid.get("dead_fraction"),
            "dense_fraction": valid.get("dense_fraction"), "max_firing_rate": valid.get("max_firing_rate"),
        }
    return list(rows.values())


def _cell(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def sae_quality(runs: list[Path], out_dir: Path) -> str:
    rows = sae_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sae_quality.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["## The SAE behind each arm's labels (held-out activations)", "",
             "| arm | layer | latents | k | variance explained | dead | dense (>10% of tokens) | "
             "busiest latent's rate |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['layer']} | {r['n_latents']} | {r['k']} | {_cell(r['fve'], '.3f')} | "
              f"{_cell(r['dead_fraction'], '.1%')} | {_cell(r['dense_fraction'], '.1%')} | "
              f"{_cell(r['max_firing_rate'], '.1%')} |" for r in rows]
    text = "\n".join(lines) + "\n"
    (out_dir / "sae_quality.md").write_text(text)
    return text


__all__ = ["sae_quality", "sae_rows"]
