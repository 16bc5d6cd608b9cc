"""What went wrong while composing a recipe, in one line that names the file, key or override.

Hydra and OmegaConf explain failures in several lines about their own internals (a parser's
"no viable alternative", a schema class name). The user wrote a recipe file and some `key=value`
overrides; these helpers check both before Hydra sees them and translate what Hydra still
raises into `<problem>; <fix>`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from cocomix.registry import CocomixError

QUOTING_HINT = ("quote values that contain '=', ',', brackets or spaces, e.g. "
                "\"teacher.overrides=['steps=4']\"")


def check_override_grammar(overrides: list[str], origin: str = "override") -> None:
    """Each override parses as Hydra's `key=value`; otherwise one line quoting the text."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except OverrideParseException as err:
            raise CocomixError(_grammar_line(override, str(err), origin)) from None


def check_schema_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """`+key=` and `~key` must not change the recipe schema: an added key would be ignored (or
    crash far from the typo), a deleted one leaves a value the run needs undefined."""
    for override in overrides:
        key = override_key(override)
        if override.startswith("~"):
            raise CocomixError(f"`{override}` deletes a key, but every recipe key is used; set "
                               f"{key}=VALUE instead")
        if not override.startswith("+"):
            continue
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        schema = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if schema is not None and dataclasses.is_dataclass(schema) and leaf not in {
            f.name for f in dataclasses.fields(schema)
        }:
            raise CocomixError(f"unknown key {key!r} (from override `{override}`): '+' cannot "
                               f"add keys the recipe does not define; check its spelling")


def _grammar_line(override: str, hydra_text: str, origin: str) -> str:
    key = override_key(override)
    if "=" not in override and not override.startswith("~"):
        return f"{origin} `{override}` is not key=value; write {key}=VALUE"
    unbalanced = _unbalanced_bracket(override.split("=", 1)[1] if "=" in override else "")
    if unbalanced:
        return f"{origin} `{override}` cannot be parsed: {unbalanced}"
    detail = hydra_text.splitlines()[0] if hydra_text else "cannot be parsed"
    detail = re.sub(r"^Error parsing override '.*'$", "cannot be parsed", detail)
    return f"{origin} `{override}` cannot be parsed ({detail}); {QUOTING_HINT}"


_CLOSING = {"[": "]", "{": "}", "(": ")"}


def _unbalanced_bracket(value: str) -> str | None:
    """`<problem>; <fix>` for a value whose brackets (outside quotes) do not pair up, else None.

    `seeds=[0,` is most often `seeds=[0, 1]` typed without quotes: the shell split it at the
    space and passed `seeds=[0,` and `1]` as two overrides. With a quote left open the brackets
    cannot be judged, and the generic message stands."""
    stack: list[str] = []
    quote = None
    escaped = False
    for char in value:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _CLOSING:
            stack.append(char)
        elif char in _CLOSING.values():
            if not stack or _CLOSING[stack[-1]] != char:
                opened = f"'{stack[-1]}' is still open" if stack else "no bracket is open"
                return f"'{char}' closes no bracket ({opened}); remove it or fix the pairing"
            stack.pop()
    if quote or not stack:
        return None
    return (f"unclosed bracket '{stack[-1]}'; close it with '{_CLOSING[stack[-1]]}' (and quote an "
            f"override whose value has spaces, or the shell splits it there)")


def read_recipe_yaml(path: Path, *, is_recipe: bool = True) -> dict[str, Any]:
    """The YAML mapping of a recipe file, or one line naming the file, the line and the fix."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{_shown(path)} line {mark.line + 1}" if mark is not None else _shown(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CocomixError(f"{where}: {problem}; fix the YAML syntax there") from None
    except UnicodeDecodeError:
        raise CocomixError(f"{_shown(path)} is not UTF-8 text; save it as UTF-8") from None
    if data is None and is_recipe:
        raise CocomixError(
            f"{_shown(path)} is empty; a recipe starts with `# @package _global_` and "
            f"`defaults: [/base, _self_]` (see recipes/pretrain/ntp.yaml)"
        )
    if not isinstance(data, dict):
        raise CocomixError(f"{_shown(path)} holds a {type(data).__name__}, not key: value lines; "
                           f"write the recipe as a YAML mapping (see recipes/pretrain/ntp.yaml)")
    if is_recipe and "/base" not in [str(d) for d in data.get("defaults") or []]:
        raise CocomixError(f"{_shown(path)} does not list /base in its defaults; start it with "
                           f"`defaults: [/base, _self_]` (see recipes/pretrain/ntp.yaml)")
    return data


def _shown(path: Path) -> str:
    """`recipes/pretrain/x.yaml` rather than the absolute path of the checkout."""
    parts = path.parts
    if "recipes" not in parts:
        return str(path)
    start = len(parts) - 1 - parts[::-1].index("recipes")
    return str(Path(*parts[start:]))


def composition_line(err: Exception, overrides: list[str]) -> str:
    """Hydra's multi-line composition error as `<problem>; <fix>`."""
    text = str(err)
    found = re.search(r"Could not find '([^']+)/([^']+)'", text)
    if found:
        group, option = found.groups()
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        return f"unknown {group} {option!r}; known: {', '.join(options)}"
    found = re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    if found:
        key = found.group(1)
        written = _find(overrides, key)
        return (f"`{written}` adds {key!r}, which the recipe already has; set it without the '+': "
                f"{written.lstrip('+')}")
    found = re.search(r"Could not override '([^']+)'", text)
    if found and found.group(1) == "size":
        return ("size= chooses a paper size (recipes/size/) only in recipes that start from one "
                "(scale/*, paper/faithful_*); set model= and train.* here instead")
    if found:
        key = found.group(1)
        return f"unknown key {key!r} (from override `{_find(overrides, key)}`); check its spelling"
    found = re.search(r"Error merging override (\S+)", text)
    if found:
        cause = str(err.__cause__ or "").splitlines()
        kind = _wanted_type(cause[0] if cause else "")
        if kind:  # a value of the wrong type: say which type the key takes
            return f"bad value in `{found.group(1)}`: {override_key(found.group(1))} takes {kind}"
        return f"bad override `{found.group(1)}`: {cause[0] if cause else text.splitlines()[0]}"
    in_file = _in_recipe_file(text)
    if in_file:
        return in_file
    first = text.splitlines()[0] if text else type(err).__name__
    return f"recipe composition failed: {first}"


def _in_recipe_file(text: str) -> str | None:
    """An unknown key or a bad value written in a recipe file (Hydra: "In 'pretrain/x': ...")."""
    found = re.match(r"In '([^']+)': \w+ raised while composing config:\n(.*)", text, flags=re.S)
    full_key = re.search(r"full_key: (\S+)", text)
    if not found or not full_key:
        return None
    where, detail, key = f"recipes/{found.group(1)}.yaml", found.group(2), full_key.group(1)
    if re.match(r"Key '[^']+' not in", detail):
        return f"unknown key {key!r} in {where}; check its spelling (--dry-run shows every key)"
    kind = _wanted_type(detail)
    if "Incompatible value 'None'" in detail:
        return f"{key} is null in {where}; give it a value{f' ({kind})' if kind else ''} or remove the line"
    if kind:
        return f"bad value for {key} in {where}: {key} takes {kind}"
    return f"bad value for {key} in {where}: {detail.splitlines()[0]}"


def _wanted_type(message: str) -> str | None:
    found = re.search(r"could not be converted to (\w+)|is not a valid (bool)|field of type '(\w+)'",
                      message)
    if not found:
        return None
    kind = next(g for g in found.groups() if g).lower()
    return {"integer": "an integer", "int": "an integer", "bool": "true or false",
            "float": "a number"}.get(kind, f"a {kind}")


def override_key(override: str) -> str:
    """The key an override sets: `train.lr` of `+train.lr=1e-3` (also `~key`, `key@pkg=`)."""
    return override.lstrip("+~").split("=", 1)[0].split("@", 1)[0]


def _find(overrides: list[str], key: str) -> str:
    return next((o for o in overrides if override_key(o) == key), key)


__all__ = ["check_override_grammar", "check_schema_keys", "composition_line", "override_key", "read_recipe_yaml"]
