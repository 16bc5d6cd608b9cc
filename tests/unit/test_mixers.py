"""The built-in mixers on plain tensors (paper brief §1.5, §2.3, §2.8); the model-level behaviour
(causal structure, KV cache) is in ``tests/unit/models/test_model_concepts.py``."""

from __future__ import annotations

import pytest
import torch

from cocomix.mixers import AddMixer, InterleaveMixer, Mixer, NoneMixer, PauseMixer
from cocomix.registry import MIXERS, CocomixError

D = 8


def test_registry_entries_and_flags() -> None:
    expected = {
        "none": (NoneMixer, 1, False),
        "interleave": (InterleaveMixer, 2, True),
        "add": (AddMixer, 1, True),
        "pause": (PauseMixer, 2, False),
    }
    for name, (cls, factor, needs) in expected.items():
        mixer = MIXERS.build(name, None, D)
        assert type(mixer) is cls and isinstance(mixer, Mixer)
        assert (mixer.length_factor, mixer.contract.reads_concept) == (factor, needs), name


def test_interleave_layout() -> None:
    mixer = InterleaveMixer(None, D)
    h, c = torch.randn(2, 5, D), torch.randn(2, 5, D)
    x = mixer.mix(h, c)
    assert x.shape == (2, 10, D)
    # [h1, c1, h2, c2, ...] exactly as the official stack(dim=2).view(B, 2T, d).
    torch.testing.assert_close(x, torch.stack([h, c], dim=2).view(2, 10, D), rtol=0, atol=0)
    torch.testing.assert_close(x[:, 0::2], h, rtol=0, atol=0)
    torch.testing.assert_close(x[:, 1::2], c, rtol=0, atol=0)
    # The LM head reads the concept slots.
    torch.testing.assert_close(mixer.select_lm_positions(x), c, rtol=0, atol=0)
    # Packed (N, d) sequences interleave per token too.
    assert mixer.mix(h[0], c[0]).shape == (10, D)
    assert list(mixer.parameters()) == []


def test_add_keeps_length_and_reads_tokens() -> None:
    mixer = AddMixer(None, D)
    h, c = torch.randn(2, 5, D), torch.randn(2, 5, D)
    x = mixer.mix(h, c)
    assert x.shape == h.shape
    torch.testing.assert_close(x, h + c, rtol=0, atol=0)
    assert mixer.select_lm_positions(x) is x
    assert list(mixer.parameters()) == []


@pytest.mark.parametrize("name", ["interleave", "add"])
def test_concept_mixers_refuse_a_missing_concept(name: str) -> None:
    with pytest.raises(CocomixError, match="needs a concept vector"):
        MIXERS.build(name, None, D).mix(torch.randn(1, 3, D), None)


def test_pause_vector_is_learnable_and_in_the_state_dict() -> None:
    torch.manual_seed(0)
    mixer = PauseMixer(None, 256)
    assert set(mixer.state_dict()) == {"pause"}
    assert mixer.pause.requires_grad and mixer.pause.shape == (256,)
    assert abs(mixer.pause.std().item() - 0.02) < 0.003  # N(0, 0.02) in reset_parameters
    h = torch.randn(2, 4, 256)
    x = mixer.mix(h, torch.randn(2, 4, 256))  # any concept is ignored
    assert x.shape == (2, 8, 256)
    torch.testing.assert_close(x[:, 0::2], h, rtol=0, atol=0)
    torch.testing.assert_close(x[:, 1::2], mixer.pause.expand(2, 4, 256), rtol=0, atol=0)
    assert torch.equal(mixer.mix(h, None), x)
    torch.testing.assert_close(mixer.select_lm_positions(x), x[:, 0::2])  # the token slots
    x[:, 1::2].sum().backward()
    torch.testing.assert_close(mixer.pause.grad, torch.full((256,), 8.0))
    with pytest.raises(CocomixError, match="model_dim"):
        PauseMixer(None, 0)


def test_no_mixer_option_can_be_accepted_and_ignored() -> None:
    """The model builds its mixer from the name alone (``CocoLMConfig.mixer``), so a mixer option
    would compose, show in --dry-run and change nothing: no built-in mixer has one, and setting
    one is refused (issue 26: ``mixer.init_std`` was listed, unsettable and unused)."""
    import dataclasses

    from cocomix.experiment import dry_run
    from cocomix.registry import MIXERS, CocomixError
    from cocomix.runtime.builtins import load_builtins

    load_builtins()
    for name in MIXERS.names():
        assert dataclasses.fields(MIXERS.get(name).config_cls) == (), name
    with pytest.raises(CocomixError, match="unknown key 'mixer.init_std'"):
        dry_run("pretrain/ntp", ["mixer=pause", "mixer.init_std=0.05"])
