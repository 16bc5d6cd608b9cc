"""The method layer imports with torch alone (DESIGN.md: it must run where fairseq2 cannot)."""

from __future__ import annotations

import subprocess
import sys

METHOD_MODULES = [
    "cocomix.registry",
    "cocomix.contracts",
    "cocomix.types",
    "cocomix.mixers",
    "cocomix.concepts",
    "cocomix.concepts.none",
    "cocomix.objectives",
    "cocomix.objectives.ntp",
    "cocomix.objectives.cocomix",
    "cocomix.objectives.terms",
    "cocomix.objectives.kd",
    "cocomix.objectives.pause",
    "cocomix.objectives.concept_prediction_only",
    "cocomix.objectives.concept_mixing_only",
    "cocomix.objectives.hidden_state_prediction",
    "cocomix.concepts.sae",
    "cocomix.concepts.sae_training",
    "cocomix.concepts.attribution",
    "cocomix.concepts.sources",
    "cocomix.concepts.cached",
    "cocomix.concepts.head",
    "cocomix.concepts.head_kinds",
    "cocomix.concepts.hidden_head",
]
FORBIDDEN = ("fairseq2", "fairseq2n", "hydra", "omegaconf")


def test_method_modules_import_without_fairseq2_or_hydra() -> None:
    code = (
        "import sys\n"
        f"for m in {METHOD_MODULES!r}: __import__(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"method modules pulled in: {out.stdout.strip()}"
