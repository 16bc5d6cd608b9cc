"""Registry behaviour: lookup, errors that list the known names, duplicates, plugins."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from cocomix.registry import CocomixError, DuplicateNameError, Registry, UnknownNameError, import_plugins


@dataclass
class Opts:
    width: int = 3


def make() -> Registry[object]:
    registry: Registry[object] = Registry("widgets", key="widget")

    @registry.register("square", Opts)
    def square(config: Opts) -> int:
        return config.width**2

    registry.add("cube", lambda config: config.width**3, Opts, defaults=lambda: Opts(width=2))
    return registry


def test_build_uses_default_or_given_config() -> None:
    registry = make()
    assert registry.build("square") == 9
    assert registry.build("square", Opts(width=5)) == 25
    assert registry.build("cube") == 8  # per-name defaults
    assert registry.names() == ["cube", "square"]
    assert "cube" in registry and "sphere" not in registry


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        make().get("sqare")
    message = str(info.value)
    assert "unknown widget 'sqare'" in message
    assert "cube, square" in message
    assert "plugins" in message
    assert isinstance(info.value, CocomixError)


def test_duplicate_name_is_refused_naming_both_modules() -> None:
    registry = make()
    with pytest.raises(DuplicateNameError, match="'square' is registered twice"):
        registry.add("square", lambda c: 0, Opts)


def test_config_must_be_a_dataclass() -> None:
    with pytest.raises(CocomixError, match="not a dataclass"):
        make().add("bad", lambda c: 0, dict)


def test_plugin_import_registers_and_missing_plugin_is_one_clear_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_plugin_mod.py").write_text(
        "from cocomix.registry import OBJECTIVES\n"
        "from cocomix.objectives.ntp import NextTokenPrediction, NtpConfig\n"
        "OBJECTIVES.add('my_ntp', NextTokenPrediction, NtpConfig)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from cocomix.registry import OBJECTIVES

    try:
        import_plugins(["my_plugin_mod"])
        assert "my_ntp" in OBJECTIVES
    finally:
        OBJECTIVES._entries.pop("my_ntp", None)
        sys.modules.pop("my_plugin_mod", None)
    with pytest.raises(CocomixError, match="plugin module 'no_such_plugin' not found"):
        import_plugins(["no_such_plugin"])


def test_contract_is_type_checked_and_defaults_when_absent() -> None:
    from cocomix.contracts import MixerContract, ObjectiveContract

    registry: Registry[object] = Registry("mixers", key="mixer", contract=MixerContract)

    class Reads:
        contract = MixerContract(reads_concept=True)

    class Wrong:
        contract = ObjectiveContract()

    registry.add("reads", Reads, Opts)
    registry.add("plain", lambda config: 0, Opts)  # a function factory declares nothing
    assert registry.get("reads").contract.reads_concept
    assert registry.get("plain").contract == MixerContract()
    with pytest.raises(CocomixError, match="its `contract` is a ObjectiveContract, not a MixerContract"):
        registry.add("wrong", Wrong, Opts)
    assert make().get("square").contract is None  # kinds without contracts (archs, corpora)
