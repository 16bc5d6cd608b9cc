"""CocoLMConfig: arch presets, validation messages, both config systems (OmegaConf, fairseq2)."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError

from cocomix.models import CocoLMConfig, create_cocomix_lm
from cocomix.registry import ARCHS, CocomixError, UnknownNameError

ALL_ARCHS = ["tiny", "gpt2_69m", "gpt2_386m", "gpt2_1b", "gpt2_69m_ntp", "gpt2_386m_ntp",
             "gpt2_1b_ntp", "gpt2_124m"]


def test_every_arch_is_registered_with_the_factory() -> None:
    for name in ALL_ARCHS:
        entry = ARCHS.get(name)
        assert entry.config_cls is CocoLMConfig
        assert entry.factory is create_cocomix_lm
        entry.default_config().validate()


@pytest.mark.parametrize(
    "name, dims",
    [
        # (d, layers, heads, insert_layer): paper brief §3
        ("gpt2_69m", (512, 8, 8, 3)),
        ("gpt2_386m", (1024, 24, 16, 5)),
        ("gpt2_1b", (2048, 24, 16, 5)),
        ("gpt2_69m_ntp", (624, 8, 8, 3)),
        ("gpt2_386m_ntp", (1072, 24, 16, 5)),
        ("gpt2_1b_ntp", (2096, 24, 16, 5)),
        ("gpt2_124m", (768, 12, 12, 6)),  # the teacher (§1.1); its SAE reads resid_post of 5
    ],
)
def test_paper_arch_sizes(name: str, dims: tuple[int, int, int, int]) -> None:
    c = ARCHS.get(name).default_config()
    assert (c.model_dim, c.num_layers, c.num_heads, c.insert_layer) == dims
    assert c.ffn_inner_dim == 4 * c.model_dim
    assert (c.vocab_size, c.max_seq_len, c.dropout_p) == (50257, 1024, 0.1)
    assert c.model_dim % c.num_heads == 0


def test_tiny_arch() -> None:
    c = ARCHS.get("tiny").default_config()
    assert (c.model_dim, c.num_layers, c.num_heads, c.vocab_size, c.max_seq_len) == (
        128, 4, 4, 8000, 256)
    assert (c.insert_layer, c.dropout_p) == (2, 0.0)


def test_presets_are_fresh_objects() -> None:
    a = ARCHS.get("tiny").default_config()
    a.num_layers = 99
    assert ARCHS.get("tiny").default_config().num_layers == 4


def test_insert_layer_outside_model_message() -> None:
    c = dataclasses.replace(ARCHS.get("gpt2_69m").default_config(), insert_layer=9)
    with pytest.raises(CocomixError) as err:
        c.validate()
    assert str(err.value) == "model.insert_layer=9 is outside the model (model.num_layers=8): choose 0..8"
    with pytest.raises(CocomixError, match="outside the model"):
        dataclasses.replace(c, insert_layer=-1).validate()
    # Both ends are legal: mix right after the embeddings, or right before the final LayerNorm.
    dataclasses.replace(c, insert_layer=0).validate()
    dataclasses.replace(c, insert_layer=8).validate()


@pytest.mark.parametrize(
    "overrides, pattern",
    [
        (dict(model_dim=130), "not divisible by num_heads=4"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(vocab_size=-5), "vocab_size must be a positive integer"),
        (dict(num_heads=0), "num_heads must be a positive integer"),
        (dict(dropout_p=1.0), "dropout_p"),
        (dict(init_std=0.0), "init_std"),
        (dict(pad_idx=8000), "pad_idx=8000 is not a token id"),
    ],
)
def test_validation_errors(overrides: dict[str, object], pattern: str) -> None:
    c = dataclasses.replace(ARCHS.get("tiny").default_config(), **overrides)
    with pytest.raises(CocomixError, match=pattern):
        c.validate()


def test_unknown_mixer_lists_known_ones() -> None:
    c = dataclasses.replace(ARCHS.get("tiny").default_config(), mixer="interleaf")
    with pytest.raises(UnknownNameError, match="known: .*none"):
        c.validate()


def test_factory_validates_first() -> None:
    with pytest.raises(CocomixError, match="outside the model"):
        create_cocomix_lm(dataclasses.replace(ARCHS.get("tiny").default_config(), insert_layer=5))


def test_omegaconf_can_type_the_config() -> None:
    schema = OmegaConf.structured(CocoLMConfig)
    merged = OmegaConf.merge(schema, {"model_dim": 64, "pad_idx": 3})
    obj = OmegaConf.to_object(merged)
    assert isinstance(obj, CocoLMConfig) and obj.model_dim == 64 and obj.pad_idx == 3
    with pytest.raises(ConfigKeyError):  # typos fail at compose time
        OmegaConf.merge(schema, {"model_dimm": 64})


def test_fairseq2_value_converter_round_trip() -> None:
    from fairseq2.utils.structured import StandardValueConverter

    conv = StandardValueConverter()
    c = ARCHS.get("gpt2_69m").default_config()
    data = conv.unstructure(c)
    assert data["insert_layer"] == 3
    assert conv.structure(data, CocoLMConfig) == c
