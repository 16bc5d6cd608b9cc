"""Compose a recipe YAML with Hydra's Compose API: one config authority, typed, loud on typos.

Order of precedence (later wins): ``base.yaml`` < the recipe file < the preset overlay
(``recipes/presets/<name>.yaml``) < command-line overrides. The preset is applied as overrides so a
recipe states only its delta from base and still runs tiny on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from cocomix.registry import ALL_REGISTRIES, CocomixError, import_plugins
from cocomix.runtime.compose_errors import (
    check_override_grammar,
    check_schema_keys,
    composition_line,
    override_key,
    read_recipe_yaml,
)
from cocomix.runtime.recipe_files import PRESET_DIR, RECIPES_DIR, SIZE_GROUP, recipe_file
from cocomix.runtime.schema import GROUP_KEYS, RecipeSchema

@dataclass
class ComposedRecipe:
    """A recipe after composition: the typed config plus what chose it."""

    name: str
    """Recipe path relative to the recipes folder, without `.yaml` (e.g. `pretrain/ntp`)."""
    cfg: DictConfig
    choices: dict[str, str]
    """Registry name chosen for each group key (model, data, objective, ...)."""
    overrides: list[str]
    """The overrides composed on top of the recipe (preset first, then the user's)."""
    preset: str

    def resolved(self) -> dict[str, Any]:
        """Plain dict of the resolved config; each group node carries its registry `name`."""
        data = OmegaConf.to_container(self.cfg, resolve=True)
        assert isinstance(data, dict)
        for key in GROUP_KEYS:
            data[key] = {"name": self.choices[key], **(data.get(key) or {})}
        data["preset"] = self.preset
        return data

    def group(self, key: str) -> tuple[str, Any]:
        """(registry name, typed options object) of one group key."""
        node = self.cfg[key]
        obj = OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
        return self.choices[key], obj


_STORED: dict[tuple[str, str], object] = {}
"""(group, name) -> the registry entry Hydra's ConfigStore holds for it. Storing every entry
again on each composition took about 0.2 s a call, a third of a dry run's time."""


def register_groups() -> None:
    """Expose each registry as a Hydra config group: option name = registered name. Entries
    registered since the last call (plugins) are added; a name registered anew is stored again."""
    store = ConfigStore.instance()
    if ("", "cocomix_schema") not in _STORED:
        store.store(name="cocomix_schema", node=RecipeSchema)
        _STORED[("", "cocomix_schema")] = RecipeSchema
    for registry in ALL_REGISTRIES:
        for entry in registry:
            if _STORED.get((registry.key, entry.name)) is not entry:
                store.store(group=registry.key, name=entry.name, node=entry.default_config())
                _STORED[(registry.key, entry.name)] = entry


def _with_plugins(path: Path, overrides: list[str]) -> tuple[list[str], list[str]]:
    """(plugins to import, overrides) where `plugins=[...]` on the command line *adds* to the
    recipe's list. Plugins must be imported before composition, so they are read from the raw
    recipe files."""
    plugins: list[str] = []
    for file in (RECIPES_DIR / "base.yaml", path):
        data = read_recipe_yaml(file, is_recipe=file != RECIPES_DIR / "base.yaml")
        plugins = list(data.get("plugins", plugins) or [])
    given = [o for o in overrides if override_key(o) == "plugins"]
    if not given:
        return plugins, overrides
    for override in given:
        value = yaml.safe_load(override.split("=", 1)[1])  # parsed by Hydra's grammar first
        if not isinstance(value, list | None):
            raise CocomixError(f"`{override}` is not a list; write plugins=[module, ...]")
        plugins += [str(p) for p in value or [] if str(p) not in plugins]
    rest = [o for o in overrides if override_key(o) != "plugins"]
    return plugins, rest + [f"plugins=[{','.join(plugins)}]"]


def _preset_overrides(preset: str) -> list[str]:
    path = RECIPES_DIR / PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (RECIPES_DIR / PRESET_DIR).glob("*.yaml"))
        raise CocomixError(f"unknown preset {preset!r}; known: {', '.join(known)}")
    data = yaml.safe_load(path.read_text()) or {}
    return [str(o) for o in data.get("overrides", [])]


def default_preset() -> str:
    import torch

    return "paper" if torch.cuda.is_available() else "tiny"


def is_group_switch(override: str) -> bool:
    """`objective=kd`, `tokenizer=gpt2_bpe`, `size=386m`: selects a registry entry or a size
    (applies to every arm)."""
    return override_key(override) in (*GROUP_KEYS, SIZE_GROUP)


def in_group(override: str) -> bool:
    """`objective.lam=0.3`: a key inside a registry group's options (exists only for some
    choices of that group)."""
    return override_key(override).split(".")[0] in GROUP_KEYS and "." in override_key(override)


def override_applies(override: str, cfg: DictConfig) -> bool:
    """Whether a preset override names a key of this composed config (presets are shared by
    recipes whose components differ, e.g. `objective.lam` only exists for concept objectives)."""
    key = override_key(override)
    if is_group_switch(override):
        return True
    return OmegaConf.select(cfg, key, default="__missing__") != "__missing__"


def _compose(path: Path, name: str, overrides: list[str]) -> tuple[DictConfig, dict[str, str]]:
    with initialize_config_dir(str(RECIPES_DIR), version_base="1.3", job_name="cocomix"):
        try:
            cfg = compose(name, overrides=overrides, return_hydra_config=True)
        except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException) as err:
            raise CocomixError(composition_line(err, overrides)) from None
    choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if k in GROUP_KEYS}
    with open_dict(cfg):
        del cfg["hydra"]
    missing = [k for k in GROUP_KEYS if k not in choices]
    if missing:
        raise CocomixError(f"recipe {name!r} selects no {missing[0]}; base.yaml must default it")
    return cfg, choices


@dataclass(frozen=True)
class RecipeProbe:
    """One composition of a recipe with an arm's overrides, before its runs are composed: the
    keys its config has, the groups it chooses and its preset. The seeds of an arm differ only in
    ``seed``, which changes none of these, so one probe serves every run of the arm."""

    cfg: DictConfig
    choices: dict[str, str]


def probe_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> RecipeProbe:
    """Compose ``recipes/<name>.yaml`` with ``overrides`` (no preset overlay) and check them."""
    path = recipe_file(name.removesuffix(".yaml"))
    check_override_grammar(list(overrides))
    plugins, user = _with_plugins(path, list(overrides))
    import_plugins(plugins)
    register_groups()
    user = [o for o in user if override_key(o) != "preset"]
    cfg, choices = _compose(path, name.removesuffix(".yaml"), user)
    check_schema_keys(cfg, user)
    return RecipeProbe(cfg, choices)


def compose_recipe(
    name: str, overrides: list[str] | tuple[str, ...] = (), *, probe: RecipeProbe | None = None
) -> ComposedRecipe:
    """Compose ``recipes/<name>.yaml`` with the preset overlay and the user's overrides.

    ``probe``: a probe of the same recipe whose overrides differ from these at most in values
    (the experiment planner passes one per arm); without one the recipe is probed here first.
    Either way the run itself is composed by Hydra exactly once.
    """
    name = name.removesuffix(".yaml")
    path = recipe_file(name)
    check_override_grammar(list(overrides))
    plugins, user = _with_plugins(path, list(overrides))
    import_plugins(plugins)
    register_groups()

    preset_override = [o for o in user if override_key(o) == "preset"]
    user = [o for o in user if override_key(o) != "preset"]
    first = probe if probe is not None else probe_recipe(name, overrides)
    preset = preset_override[-1].split("=", 1)[1] if preset_override else first.cfg.preset
    if preset == "auto":
        preset = default_preset()
    user_keys = {override_key(o) for o in user}
    recipe_overlay = [str(o) for o in first.cfg.preset_overrides.get(preset, [])]
    overlay = [
        o
        for o in _preset_overrides(preset) + recipe_overlay
        if override_key(o) not in user_keys and override_applies(o, first.cfg)
    ]
    effective = overlay + user + [f"preset={preset}"]
    # The groups the run ends up with follow from the probe and the group switches in
    # `effective` (Hydra: the last switch of a group wins), so the switches an objective or
    # `width_matched` imply are added before the one composition, not after it.
    predicted = _final_choices(first.choices, effective)
    implied = _implied_mixer(predicted)
    if implied is not None:
        effective.append(f"mixer={implied}")
        predicted["mixer"] = implied
    sibling = _width_matched_arch(_final_width_matched(first.cfg, effective), predicted)
    if sibling is not None:
        effective.append(f"model={sibling}")
        predicted["model"] = sibling
    cfg, choices = _compose(path, name, effective)
    if choices != predicted:  # the probe was not of this run's recipe and group switches
        raise CocomixError(
            f"internal: composing {name} chose {choices}, its probe predicted {predicted}; "
            f"compose it without a probe"
        )
    return ComposedRecipe(name=name, cfg=cfg, choices=choices, overrides=effective, preset=preset)


def _value(override: str) -> Any:
    """The value of ``key=value`` as Hydra's grammar reads it (``true`` is a bool)."""
    return OverridesParser.create().parse_override(override).value()


def _final_choices(probed: dict[str, str], effective: list[str]) -> dict[str, str]:
    choices = dict(probed)
    for override in effective:
        if override_key(override) in GROUP_KEYS:
            choices[override_key(override)] = str(_value(override))
    return choices


def _final_width_matched(probed: DictConfig, effective: list[str]) -> bool:
    value = bool(probed.width_matched)
    for override in effective:
        if override_key(override) == "width_matched":
            value = bool(_value(override))
    return value


def _width_matched_arch(width_matched: bool, choices: dict[str, str]) -> str | None:
    """`width_matched: true` swaps the arch for its widened `<arch>_ntp` sibling (paper §3)."""
    from cocomix.registry import ARCHS

    arch = choices["model"]
    if not width_matched or arch.endswith("_ntp"):
        return None
    if f"{arch}_ntp" not in ARCHS:
        raise CocomixError(
            f"width_matched=true but model={arch} has no width-matched sibling {arch}_ntp; "
            f"register one or set width_matched=false"
        )
    return f"{arch}_ntp"


def _implied_mixer(choices: dict[str, str]) -> str | None:
    """An objective defined with a mixer (e.g. `pause`) selects it when the recipe left `none`."""
    from cocomix.registry import OBJECTIVES

    objective = choices["objective"]
    implied = OBJECTIVES.get(objective).contract.implied_mixer
    if implied is None or choices["mixer"] == implied:
        return None
    if choices["mixer"] != "none":
        raise CocomixError(
            f"objective={objective} is defined with mixer={implied}, not mixer={choices['mixer']}; "
            f"drop the mixer override"
        )
    return str(implied)
