"""Every recipe value is judged by its meaning before anything is built (runtime/value_rules.py)."""

from __future__ import annotations

import copy
import math
import re
from dataclasses import replace

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from cocomix.registry import CocomixError
from cocomix.runtime.builtins import load_builtins
from cocomix.runtime.compose import ComposedRecipe, compose_recipe
from cocomix.experiment import dry_run
from cocomix.runtime.preflight import check_run
from cocomix.runtime.value_rules import RULES, check_values

BAD = {"a positive": -1, "zero or more": -1, "in [": 1.5, "one of": "nope", "an integer in": -5}


def bad_value(meaning: str) -> object:
    return next(value for prefix, value in BAD.items() if meaning.startswith(prefix))


@pytest.fixture(scope="module")
def ntp() -> ComposedRecipe:
    load_builtins()
    return compose_recipe("pretrain/ntp", [])


# Options of registry groups are judged on a recipe whose chosen component has them.
WITH_OPTION = {"objective.lam": ("pretrain/ntp", ["objective=kd"]), "objective.temperature": ("pretrain/ntp", ["objective=kd"]),
               "concepts.k_attr": ("pretrain/cocomix", [])}


def recipe_with(key: str, ntp: ComposedRecipe) -> ComposedRecipe:
    return compose_recipe(*WITH_OPTION[key]) if key in WITH_OPTION else ntp


@pytest.mark.parametrize("rule", RULES, ids=[r.key for r in RULES])
def test_each_rule_refuses_a_value_against_its_meaning(rule: object, ntp: ComposedRecipe) -> None:
    ntp = recipe_with(rule.key, ntp)  # type: ignore[attr-defined]
    cfg = copy.deepcopy(ntp.cfg)
    value = bad_value(rule.describe())  # type: ignore[attr-defined]
    OmegaConf.update(cfg, rule.key, value)  # type: ignore[attr-defined]
    shown = re.escape(repr(OmegaConf.select(cfg, rule.key)))  # type: ignore[attr-defined]
    with pytest.raises(CocomixError, match=rf"^{re.escape(rule.key)}={shown} must be .*; fix {rule.key}$"):  # type: ignore[attr-defined]
        check_values(cfg)


def test_the_shipped_recipe_values_pass(ntp: ComposedRecipe) -> None:
    check_values(ntp.cfg)


NUMERIC = [r.key for r in RULES if not r.describe().startswith("one of")]


@pytest.mark.parametrize("key", NUMERIC)
def test_zero_negative_huge_and_nan_give_a_run_or_one_clear_error(key: str, ntp: ComposedRecipe) -> None:
    """A property over every numeric key: the preflight passes or says one thing, never raises
    anything else (a crash inside fairseq2, torch or numpy is what the rules exist to prevent)."""
    ntp = recipe_with(key, ntp)
    for value in (0, -1, 10**12, 1e30, math.nan):
        cfg = copy.deepcopy(ntp.cfg)
        try:
            OmegaConf.update(cfg, key, value)
        except ValidationError:
            continue  # a float into an int key: Hydra refuses it at compose time, with the key
        try:
            check_run(replace(ntp, cfg=cfg))
        except CocomixError as err:
            assert "\n" not in str(err), str(err)  # the command line prints it as one line


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("validate_every=0", "validate_every=0 must be a positive number of steps"),
        ("checkpoint_every=0", "checkpoint_every=0 must be a positive number of steps"),
        ("log_every=0", "log_every=0 must be a positive number of steps"),
        ("train.grad_accum=0", "train.grad_accum=0 must be a positive number of micro-batches"),
        ("train.warmup_steps=-5", "train.warmup_steps=-5 must be zero or more"),
        ("train.lr=-1", "train.lr=-1.0 must be a positive learning rate"),
        ("train.beta1=1.5", "train.beta1=1.5 must be in [0.0, 1.0)"),
        ("train.max_grad_norm=-1", "train.max_grad_norm=-1.0 must be zero or more (0 turns clipping off)"),
        ("seed=-5", "seed=-5 must be an integer in 0..4294967295"),
        ("train.data_parallel=zero3", "train.data_parallel='zero3' must be one of ddp, fsdp"),
    ],
)
def test_dry_run_refuses_what_used_to_crash_later(override: str, expected: str) -> None:
    with pytest.raises(CocomixError, match=re.escape(expected)):
        dry_run("pretrain/ntp", [override])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [  # issue 26: these passed --dry-run and failed after the tokenizer, teacher and SAE were built
        (["objective.lam=-1"], "objective.lam=-1.0 must be zero or more (the weight of the objective's extra loss)"),
        (["objective.lam=nan"], "objective.lam=nan must be zero or more"),  # was blamed on train.lr
        (["concepts.k_attr=0"], "concepts.k_attr=0 must be a positive number of labels per token"),
        (["objective=kd", "mixer=none", "concepts=none", "objective.temperature=0"],
         "objective.temperature=0.0 must be a positive number"),
        # The teacher's own values, named as the teacher's (it failed after the shards were built).
        (["teacher.overrides=['steps=6']"],
         "the teacher pretrain/teacher (with teacher.overrides=['steps=6']): train.warmup_steps=20 must be below steps=6"),
    ],
)
def test_component_options_are_judged_by_the_dry_run(overrides: list[str], expected: str) -> None:
    with pytest.raises(CocomixError, match=re.escape(expected)):
        dry_run("pretrain/cocomix", overrides)
    dry_run("pretrain/ntp", [])  # a component without the option is not asked for it


def test_zero_max_grad_norm_turns_clipping_off() -> None:
    from cocomix.runtime.recipe import to_fairseq2_config

    load_builtins()
    composed = compose_recipe("pretrain/ntp", ["train.max_grad_norm=0"])
    assert to_fairseq2_config(composed, 400, {}).trainer.max_grad_norm is None
    composed = compose_recipe("pretrain/ntp", [])
    assert to_fairseq2_config(composed, 400, {}).trainer.max_grad_norm == 1.0


def test_repeated_seeds_run_once_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from cocomix.experiment import plan_runs

    plans = plan_runs("ablation/add_vs_mix", ["seeds=[0,0,1]", "only_arms=[ntp]"])
    assert [(p.arm, p.seed) for p in plans] == [("ntp", 0), ("ntp", 1)]
    assert "warning: seeds [0] are listed more than once" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../recipes/pretrain/ntp", "pretrain/../../x", "/etc/passwd"])
def test_recipe_names_stay_inside_recipes(name: str) -> None:
    with pytest.raises(CocomixError, match="is not a name under recipes/"):
        compose_recipe(name, [])


def test_teacher_and_sae_sources_are_registries_a_plugin_extends(ntp: ComposedRecipe) -> None:
    from cocomix.runtime.concept_artifacts import SAE_SOURCES
    from cocomix.runtime.teacher_sources import TEACHER_SOURCES, TeacherSource

    assert TEACHER_SOURCES.names() == ["checkpoint", "hf", "recipe"]
    assert SAE_SOURCES.names() == ["file", "saelens", "train"]
    cfg = copy.deepcopy(ntp.cfg)
    OmegaConf.update(cfg, "teacher.source", "from_my_lab")
    with pytest.raises(CocomixError, match="teacher.source='from_my_lab' must be one of checkpoint, hf, recipe"):
        check_values(cfg)
    OmegaConf.update(cfg, "teacher.source", "hf_gpt2")  # the old name of `hf`, refused with the new one
    with pytest.raises(CocomixError, match="teacher.source=hf_gpt2 was renamed; use teacher.source=hf "):
        check_values(cfg)
    OmegaConf.update(cfg, "teacher.source", "recipe")
    OmegaConf.update(cfg, "teacher.dtype", "fp8")
    with pytest.raises(CocomixError, match="teacher.dtype='fp8' must be one of float32, bfloat16, float16"):
        check_values(cfg)
    OmegaConf.update(cfg, "teacher.dtype", "float32")
    OmegaConf.update(cfg, "teacher.source", "from_my_lab")

    class FromMyLab(TeacherSource):
        def load(self, composed, cache_dir, data):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    TEACHER_SOURCES.add("from_my_lab", FromMyLab)
    try:
        check_values(cfg)  # a registered plugin source is a valid choice
    finally:
        TEACHER_SOURCES._entries.pop("from_my_lab")
