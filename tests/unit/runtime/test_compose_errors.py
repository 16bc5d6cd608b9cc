"""Mistakes in recipe files and in the override grammar: one line naming the file, key or text."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import cocomix.runtime.compose as compose_module
import cocomix.runtime.recipe_files as recipe_files
from cocomix.registry import CocomixError
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.compose import compose_recipe
from cocomix.experiment import plan_runs

load_builtins()
HEAD = "# @package _global_\n# a test recipe\ndefaults:\n  - /base\n  - _self_\ndescription: x\n"


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of recipes/ that the test may add bad files to."""
    copy = tmp_path / "recipes"
    shutil.copytree(compose_module.RECIPES_DIR, copy)
    (copy / "mine").mkdir()
    monkeypatch.setattr(compose_module, "RECIPES_DIR", copy)
    monkeypatch.setattr(recipe_files, "RECIPES_DIR", copy)
    return copy / "mine"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "steps: [1, 2\n", "recipes/mine/bad.yaml line 8: expected ',' or ']'"),
        (HEAD + "steps: 3\n  seed: 1\n", "recipes/mine/bad.yaml line 8: mapping values are not allowed"),
        ("", "recipes/mine/bad.yaml is empty; a recipe starts with `# @package _global_`"),
        ("- a\n- b\n", "recipes/mine/bad.yaml holds a list, not key: value lines"),
        ("description: x\nsteps: 3\n", "recipes/mine/bad.yaml does not list /base in its defaults"),
        (HEAD + "stepz: 4\n", "unknown key 'stepz' in recipes/mine/bad.yaml; check its spelling"),
        (HEAD + "train:\n  lrr: 1e-3\n", "unknown key 'train.lrr' in recipes/mine/bad.yaml"),
        (HEAD + "steps: null\n", "steps is null in recipes/mine/bad.yaml; give it a value (an integer)"),
        (HEAD + "steps: ten\n", "bad value for steps in recipes/mine/bad.yaml: steps takes an integer"),
    ],
)
def test_a_bad_recipe_file_is_one_line_naming_it(recipes: Path, text: str, expected: str) -> None:
    (recipes / "bad.yaml").write_text(text)
    with pytest.raises(CocomixError) as info:
        compose_recipe("mine/bad", [])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("steps", "override `steps` is not key=value; write steps=VALUE"),
        ("teacher.overrides=[steps=4]", "override `teacher.overrides=[steps=4]` cannot be parsed"),
        ("seeds=[0,,1]", "override `seeds=[0,,1]` cannot be parsed (no viable alternative"),
        ("plugins=x'", "override `plugins=x'` cannot be parsed"),
    ],
)
def test_a_command_line_grammar_error_quotes_the_override(override: str, expected: str) -> None:
    with pytest.raises(CocomixError) as info:
        compose_recipe("pretrain/ntp", [override])
    assert expected in str(info.value)
    if "=" in override:
        assert "quote values that contain '='" in str(info.value)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # `seeds=[0, 1]` typed without quotes: the shell passes `seeds=[0,` and `1]`.
        ("seeds=[0,", "override `seeds=[0,` cannot be parsed: unclosed bracket '['; close it with ']' "
                      "(and quote an override whose value has spaces, or the shell splits it there)"),
        ("train.lr=[1", "override `train.lr=[1` cannot be parsed: unclosed bracket '['; close it with ']'"),
        ("seeds=[[0,1]", "unclosed bracket '['"),
        ("teacher.overrides=['steps=4'", "unclosed bracket '['"),
        ("teacher.overrides=['a]'", "unclosed bracket '['"),  # a bracket inside quotes does not close
        ("seeds=0]", "override `seeds=0]` cannot be parsed: ']' closes no bracket (no bracket is open); "
                     "remove it or fix the pairing"),
        ("seeds=[0}", "'}' closes no bracket ('[' is still open)"),
    ],
)
def test_an_unbalanced_bracket_is_named_not_blamed_on_quoting(override: str, expected: str) -> None:
    with pytest.raises(CocomixError) as info:
        compose_recipe("pretrain/ntp", [override])
    assert expected in str(info.value)
    assert "quote values that contain" not in str(info.value)


def test_the_quoted_form_the_hint_suggests_composes() -> None:
    composed = compose_recipe("pretrain/cocomix", ["teacher.overrides=['steps=4']"])
    assert list(composed.cfg.teacher.overrides) == ["steps=4"]


def test_a_grammar_error_in_an_arm_names_the_arm(recipes: Path) -> None:
    (recipes / "arms.yaml").write_text(HEAD + "arms:\n  fine: [steps=3]\n  broken: [steps]\n")
    with pytest.raises(CocomixError, match=r"arm 'broken' of recipes/mine/arms.yaml: override `steps` "
                                           r"is not key=value"):
        plan_runs("mine/arms", [])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("+train.foo=1", "unknown key 'train.foo' (from override `+train.foo=1`): '+' cannot add keys"),
        ("++objective.lamm=1", "unknown key 'objective.lamm' (from override `++objective.lamm=1`)"),
        ("+steps=-5", "`+steps=-5` adds 'steps', which the recipe already has; set it without the '+': steps=-5"),
        ("~steps", "`~steps` deletes a key, but every recipe key is used; set steps=VALUE instead"),
    ],
)
def test_additions_and_deletions_cannot_change_the_schema(override: str, expected: str) -> None:
    with pytest.raises(CocomixError) as info:
        compose_recipe("pretrain/cocomix", [override])
    assert expected in str(info.value)


def test_plugins_on_the_command_line_add_to_the_recipes_list(recipes: Path) -> None:
    (recipes / "with_plugin.yaml").write_text(HEAD + "plugins: [cocomix.objectives.ntp]\n")
    composed = compose_recipe("mine/with_plugin", ["plugins=[cocomix.objectives.kd]"])
    assert list(composed.cfg.plugins) == ["cocomix.objectives.ntp", "cocomix.objectives.kd"]
    again = compose_recipe("mine/with_plugin", ["plugins=[cocomix.objectives.ntp]"])
    assert list(again.cfg.plugins) == ["cocomix.objectives.ntp"]  # named twice, imported once
