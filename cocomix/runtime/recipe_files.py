"""Where recipes live: the files under ``recipes/``, their names and one-line purposes.

A recipe's name is its path under ``recipes/`` without ``.yaml`` (``pretrain/ntp``); it also
names its run folders (``runs/<recipe>/...``), so a name never leaves the folder.
"""

from __future__ import annotations

from pathlib import Path

from cocomix.registry import CocomixError

RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
PRESET_DIR = "presets"
SIZE_GROUP = "size"
NOT_RECIPE_DIRS = (PRESET_DIR, SIZE_GROUP)
"""Folders of recipes/ that hold building blocks, not recipes: presets and the paper's sizes
(`size/69m.yaml`, chosen in a paper-scale recipe's defaults or by `size=386m`)."""
NOT_RECIPES = ("base.yaml",)


def recipe_file(name: str) -> Path:
    name = name.removesuffix(".yaml")
    path = RECIPES_DIR / f"{name}.yaml"
    # Recipe names also name run folders (runs/<recipe>/...): they stay inside recipes/.
    inside = path.resolve().is_relative_to(RECIPES_DIR.resolve()) and ".." not in Path(name).parts
    if not inside or Path(name).is_absolute():
        raise CocomixError(
            f"recipe {name!r} is not a name under recipes/ (e.g. pretrain/ntp); "
            f"list them with --list"
        )
    if name.split("/")[0] in NOT_RECIPE_DIRS or f"{name}.yaml" in NOT_RECIPES or not path.is_file():
        known = ", ".join(r for r, _ in list_recipes())
        raise CocomixError(f"unknown recipe {name!r}; known recipes: {known}")
    return path


def list_recipes() -> list[tuple[str, str]]:
    """(recipe name, one-line purpose from its header comment) for every recipe file."""
    out = []
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        rel = path.relative_to(RECIPES_DIR)
        if rel.parts[0] in NOT_RECIPE_DIRS or str(rel) in NOT_RECIPES:
            continue
        out.append((str(rel.with_suffix("")), recipe_purpose(path)))
    return out


def recipe_purpose(path: Path) -> str:
    """The header comment's first sentence (it may wrap over lines), without Hydra directives."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or text.startswith("@package"):
            continue
        words.append(text)
        if text.endswith((".", "?")):
            break
    purpose = " ".join(words)
    return purpose if len(purpose) <= 150 else purpose[:149].rstrip() + "…"


__all__ = ["PRESET_DIR", "RECIPES_DIR", "SIZE_GROUP", "list_recipes", "recipe_file", "recipe_purpose"]
