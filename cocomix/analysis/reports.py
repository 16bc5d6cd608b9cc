"""What a multi-run recipe writes after its summary: the comparison of its arms (loss curves and
tokens to reach the baseline's final validation loss, ``cocomix.analysis.compare_report``) and
the extra analyses a recipe names in ``reports:``.

Extra analyses take the finished run folders and an output folder and return markdown. They are
looked up by name in ``REPORTS`` and checked before any training starts, so a typo fails at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cocomix.registry import CocomixError

NEAR_ZERO_NORM = 1e-2
"""Paper §4 (Fig. 6c): "5.8% [of the compression columns] has a norm less than 1e-2"."""

Report = Callable[[list[Path], Path], str]


def compression_column_norms(run_dir: Path) -> torch.Tensor:
    """Per-concept column norms ``||W[:, c]||_2`` of the compression layer ``W`` (d x C) of the
    run's last checkpoint (paper Fig. 6c)."""
    from cocomix.runtime.checkpoint import load_trained_lm

    model = load_trained_lm(run_dir)
    head = getattr(model, "concept_head", None)
    compressor = getattr(head, "compressor", None)
    if compressor is None:
        raise CocomixError(
            f"{run_dir} has no concept compressor (objective without concept mixing); "
            "compression_weights needs a CoCoMix run"
        )
    return compressor.weight.detach().float().norm(dim=0)


def compression_weights(runs: list[Path], out_dir: Path) -> str:
    """Histogram PNG of the compression layer's column norms (one series per run) and the
    fraction of concepts whose column is near zero, i.e. concepts the model learned to ignore.

    The initial norms are about ``init_std * sqrt(d)``; a column only shrinks below 1e-2 if
    weight decay (the paper uses no other regulariser on W, brief §2.6) wins over the gradient
    for that concept, which takes many steps, so short runs report the fraction honestly as is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[dict[str, Any]] = []
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for run in runs:
        norms = compression_column_norms(run)
        label = f"{run.parent.name}/{run.name}"
        rows.append({
            "run": str(run), "concepts": int(norms.numel()),
            "fraction_below_1e-2": float((norms < NEAR_ZERO_NORM).float().mean()),
            "min": float(norms.min()), "median": float(norms.median()), "max": float(norms.max()),
        })
        ax.hist(norms.numpy(), bins=60, alpha=0.5, label=label)
    ax.axvline(NEAR_ZERO_NORM, color="0.3", linestyle="--", linewidth=1, label="norm = 1e-2")
    ax.set_xlabel("column norm ||W[:, c]||₂ of the compression layer")
    ax.set_ylabel("number of concepts")
    ax.set_title("Compression-layer weight norms per concept (paper Fig. 6c)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "compression_weight_norms.png")
    plt.close(fig)
    (out_dir / "compression_weights.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["## Compression-layer column norms (Fig. 6c; paper: 5.8% below 1e-2 at 386M)", "",
             "| run | concepts | below 1e-2 | min | median | max |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['concepts']} | {100 * r['fraction_below_1e-2']:.2f}% | "
              f"{r['min']:.4f} | {r['median']:.4f} | {r['max']:.4f} |" for r in rows]
    lines.append(f"\nhistogram: {out_dir / 'compression_weight_norms.png'}")
    text = "\n".join(lines) + "\n"
    (out_dir / "compression_weights.md").write_text(text)
    return text


def _paired_vs_ntp(runs: list[Path], out_dir: Path) -> str:
    from cocomix.analysis.paired import paired_vs_ntp

    return paired_vs_ntp(runs, out_dir)


def _teacher_strength(runs: list[Path], out_dir: Path) -> str:
    from cocomix.analysis.paired import teacher_strength

    return teacher_strength(runs, out_dir)


def _sae_quality(runs: list[Path], out_dir: Path) -> str:
    from cocomix.analysis.sae_quality import sae_quality

    return sae_quality(runs, out_dir)


REPORTS: dict[str, Report] = {
    "compression_weights": compression_weights,
    "paired_vs_ntp": _paired_vs_ntp,
    "sae_quality": _sae_quality,
    "teacher_strength": _teacher_strength,
}


def check_reports(names: list[str]) -> None:
    unknown = [n for n in names if n not in REPORTS]
    if unknown:
        raise CocomixError(f"reports: unknown {unknown}; choose from {', '.join(REPORTS)}")


def recipe_report(runs: list[Path], out_dir: Path, *, baseline: str, reports: list[str]) -> str:
    """Compare the arms (plots and tables under ``out_dir/compare``) and run the named extra
    reports; returns the tokens-to-reach table and the reports' markdown for the console."""
    from cocomix.analysis.compare_report import compare, savings_table

    check_reports(reports)
    compare(runs, out_dir / "compare", baseline=baseline or None)
    result = json.loads((out_dir / "compare" / "compare.json").read_text())
    sections = [f"plots and tables: {out_dir / 'compare'}"]
    if result["baseline"] is not None:
        sections.append(savings_table(result["tokens_to_reach"], result["baseline"]))
    sections += [REPORTS[name](runs, out_dir) for name in reports]
    return "\n".join(sections)
