"""The method layer's mixers: torch-only import, the ``none`` mixer, the registry entry."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable

import pytest
import torch

from cocomix.mixers import Mixer, NoneMixer
from cocomix.registry import MIXERS, CocomixError


def test_mixers_import_with_torch_alone(
    run_python: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    code = textwrap.dedent(
        """
        import sys
        import cocomix.mixers
        bad = sorted(m for m in sys.modules
                     if m.split(".")[0] in {"fairseq2", "fairseq2n", "hydra", "omegaconf"})
        assert not bad, bad
        print("OK")
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stdout + result.stderr


def test_none_mixer_is_identity() -> None:
    mixer = MIXERS.build("none", None, 16)
    assert isinstance(mixer, NoneMixer) and isinstance(mixer, Mixer)
    assert mixer.length_factor == 1 and not mixer.contract.reads_concept
    h = torch.randn(2, 5, 16)
    assert mixer.mix(h, None) is h
    assert mixer.mix(h, torch.randn(2, 5, 16)) is h  # "prediction only": concept unused
    assert mixer.select_lm_positions(h) is h
    assert list(mixer.parameters()) == []


def test_require_concept_message() -> None:
    with pytest.raises(CocomixError, match="needs a concept vector"):
        Mixer()._require_concept(None)
