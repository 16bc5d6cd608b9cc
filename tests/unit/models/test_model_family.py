"""fairseq2 can build ``cocomix_lm`` by arch name: through the hub, through the route a recipe's
``ModelSection(family=, arch=, config_overrides=)`` takes, and from an asset card.

Runs in a fresh interpreter: ``init_fairseq2`` may be called once per process.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable

SCRIPT = textwrap.dedent(
    """
    import dataclasses, torch
    from fairseq2 import init_fairseq2
    from fairseq2.composition import register_in_memory_assets
    from fairseq2.gang import create_fake_gangs
    from fairseq2.models import ModelFamily
    from fairseq2.recipe.internal.asset_config import _StandardAssetConfigOverrider
    from fairseq2.runtime.dependency import wire_object
    from cocomix.models import (CocoLMConfig, CocoMixLM, get_cocomix_lm_hub,
                                register_cocomix_lm, count_parameters)
    from cocomix.registry import ARCHS, CocomixError
    import fairseq2.runtime.dependency as dep

    # 0. Building a model must not initialise fairseq2 behind the runtime's back: otherwise a
    #    later init_fairseq2(extras=...) fails with "init_fairseq2() is already called".
    ARCHS.build("tiny")
    assert dep._resolver is None

    def extras(container):
        register_cocomix_lm(container)
        register_in_memory_assets(container, "cocomix_test", [
            {"name": "coco_tiny3", "model_family": "cocomix_lm", "model_arch": "tiny",
             "model_config": {"num_layers": 3, "insert_layer": 1}},
        ])

    resolver = init_fairseq2(extras=extras)

    # 1. The hub lists every ARCHS entry and builds one with an override.
    hub = get_cocomix_lm_hub()
    assert hub.get_archs() == set(ARCHS.names()), hub.get_archs()
    config = dataclasses.replace(hub.get_arch_config("tiny"), num_layers=3)
    model = hub.create_new_model(config)
    assert isinstance(model, CocoMixLM) and len(model.layers) == 3
    assert hub.get_arch_config("gpt2_386m_ntp").model_dim == 1072

    # 2. The recipe route: family + arch lookup, then config_overrides merged and validated by
    #    fairseq2's own overrider, then family.create_new_model (as fairseq2's
    #    _StandardTrainModelBootstrapper does).
    family = resolver.resolve(ModelFamily, key="cocomix_lm")
    overrider = wire_object(resolver, _StandardAssetConfigOverrider)
    config = overrider.apply_overrides("model", family.maybe_get_arch_config("tiny"),
                                       {"num_layers": 3, "dropout_p": 0.1})
    assert isinstance(config, CocoLMConfig) and config.num_layers == 3
    gangs = create_fake_gangs(torch.device("cpu"))
    model = family.create_new_model(config, gangs, torch.float32, meta=False, init_rank0_only=True)
    assert len(model.layers) == 3 and model.config.dropout_p == 0.1
    x = torch.randint(0, 8000, (2, 16))
    assert model.forward_lm(x).logits.shape == (2, 16, 8000)
    try:
        overrider.apply_overrides("model", family.maybe_get_arch_config("tiny"),
                                  {"insert_layer": 9})
        raise AssertionError("a bad override was accepted")
    except CocomixError as err:
        assert "model.insert_layer=9 is outside the model (model.num_layers=4)" in str(err), err
    # Resuming from a checkpoint builds on meta first.
    meta = family.create_new_model(config, gangs, torch.float32, meta=True, init_rank0_only=True)
    assert next(meta.parameters()).device.type == "meta"
    assert count_parameters(meta) == count_parameters(model)
    # bf16 through fairseq2's dtype context.
    half = hub.create_new_model(config, dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}

    # 3. An asset card naming the family, the arch and a model_config override.
    card_config = hub.get_model_config("coco_tiny3")
    assert (card_config.num_layers, card_config.insert_layer) == (3, 1), card_config
    print("OK")
    """
)


def test_fairseq2_builds_the_family_by_arch_name(
    run_python: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    result = run_python(SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK")

