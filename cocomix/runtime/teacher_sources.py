"""Where a run's frozen teacher comes from: the ``teacher.source`` registry.

Built-ins: ``recipe`` (a teacher trained by a recipe of its own, once, in the artifact cache; the
experiment layer trains it before the runs that need it), ``checkpoint`` (a cocomix run folder)
and ``hf`` (any Hugging Face causal LM, a folder or a hub name: GPT-2 124M is the paper's
teacher, §2.1; ``runtime/hf_teacher.py``). A plugin
registers another with ``@TEACHER_SOURCES.register("name")`` on a ``TeacherSource`` subclass.
"""

from __future__ import annotations

import abc
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocomix.cache_files import cache_key
from cocomix.registry import CocomixError, Registry
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.checkpoint import checkpoint_steps, load_model_config, load_trained_lm
from cocomix.runtime.compose import ComposedRecipe, compose_recipe
from cocomix.runtime.rundir import read_artifacts
from cocomix.runtime.schema import IDENTITY_NEUTRAL_AT_DEFAULT, RESUME_NEUTRAL_KEYS
from cocomix.runtime.teacher import CocoLMTeacher
from cocomix.types import TeacherLM


@dataclass(frozen=True)
class LoadedTeacher:
    teacher: TeacherLM
    identity: str
    """Identifies the teacher's weights: part of the SAE's and the label cache's keys."""
    location: str
    """Where it was read from (recorded in the run's ``artifacts.json``)."""


@dataclass(frozen=True)
class TeacherPlan:
    width: int
    depth: int
    description: str
    """One line for ``--dry-run``: where the teacher comes from and its shape."""


class TeacherSource(abc.ABC):
    """Loads the frozen teacher ``teacher:`` names; registered factories take no options (the
    schema's ``teacher.path``, ``teacher.recipe`` and ``teacher.overrides`` say which)."""

    trained_before_run: bool = False
    """The teacher is a run the experiment layer plans and trains first (``recipe``)."""

    def __init__(self, config: Any = None) -> None:
        del config

    @abc.abstractmethod
    def load(self, composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> LoadedTeacher:
        """The frozen teacher for ``composed``, checked against the run's tokenizer."""

    def plan(self, composed: ComposedRecipe, *, reads_layer: bool = True) -> TeacherPlan | None:
        """The teacher's shape read without loading weights (``--dry-run`` and the preflight),
        after the checks that need no weights; None where that would mean building it."""
        return None


TEACHER_SOURCES: Registry[TeacherSource] = Registry("teacher_sources", key="teacher.source")


@dataclass(frozen=True)
class TeacherRun:
    """A teacher a run trains on demand (``teacher.source=recipe``): a run of its own, keyed by
    what makes it what it is, kept in the artifact cache. The experiment layer plans it as a
    node and trains it before the runs that need it."""

    name: str
    """The teacher's recipe, e.g. ``pretrain/teacher``."""
    recipe: ComposedRecipe
    run_dir: Path
    identity: str
    steps: int

    def trained(self) -> bool:
        steps = checkpoint_steps(self.run_dir)
        return bool(steps) and steps[-1] >= self.steps


def teacher_identity_config(resolved: dict[str, Any]) -> dict[str, Any]:
    """What makes a cached teacher what it is: its resolved config without the keys that never
    change a run, and without keys added later while at their default (``schema.py``), so adding
    such a key to the schema does not retrain every cached teacher."""
    config = {k: v for k, v in resolved.items() if k not in (*RESUME_NEUTRAL_KEYS, "description")}
    for key, default in IDENTITY_NEUTRAL_AT_DEFAULT.items():
        section, name = key.split(".")
        if config.get(section, {}).get(name) == default:
            config[section] = {k: v for k, v in config[section].items() if k != name}
    return config


def teacher_run(composed: ComposedRecipe, cache_dir: Path) -> TeacherRun:
    """The teacher run ``composed``'s ``teacher.recipe`` (with its overrides) asks for."""
    spec = composed.cfg.teacher
    overrides = [f"preset={composed.preset}", *spec.overrides]
    recipe = compose_recipe(str(spec.recipe), overrides)
    identity = cache_key(teacher_identity_config(recipe.resolved()))
    run_dir = cache_dir / "teachers" / f"{str(spec.recipe).replace('/', '-')}-{identity}"
    return TeacherRun(str(spec.recipe), recipe, run_dir, identity, int(recipe.cfg.steps))


@TEACHER_SOURCES.register("recipe")
class RecipeTeacher(TeacherSource):
    """``teacher.recipe`` trained once (with ``teacher.overrides`` and the consumer's preset)."""

    trained_before_run = True

    def load(self, composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> LoadedTeacher:
        node = teacher_run(composed, cache_dir)
        if not node.trained():
            raise CocomixError(
                f"the teacher {node.name} is not trained yet ({node.run_dir}); run the recipe with "
                f"`python -m recipes.run`, which trains the teachers of its plan first"
            )
        _check_same_tokenizer(node.run_dir, data)
        return LoadedTeacher(CocoLMTeacher(load_trained_lm(node.run_dir)), node.identity, str(node.run_dir))

    def plan(self, composed: ComposedRecipe, *, reads_layer: bool = True) -> TeacherPlan | None:
        model = planned_teacher_recipe(composed).cfg.model
        return TeacherPlan(int(model.model_dim), int(model.num_layers), f"recipe {composed.cfg.teacher.recipe}")


def planned_teacher_recipe(composed: ComposedRecipe) -> ComposedRecipe:
    """The teacher recipe ``composed`` trains on demand, composed with its overrides and preset."""
    spec = composed.cfg.teacher
    return _composed_teacher(str(spec.recipe), tuple(str(o) for o in spec.overrides), composed.preset)


@functools.lru_cache(maxsize=64)
def _composed_teacher(recipe: str, overrides: tuple[str, ...], preset: str) -> ComposedRecipe:
    """Composed once per distinct teacher: a study's dozens of runs share a handful, and every
    run's preflight asks (composing is most of a ``--dry-run``'s time). Read, never changed."""
    return compose_recipe(recipe, [f"preset={preset}", *overrides])


@TEACHER_SOURCES.register("checkpoint")
class CheckpointTeacher(TeacherSource):
    """A cocomix run folder at ``teacher.path`` (its last checkpoint)."""

    def load(self, composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> LoadedTeacher:
        path = Path(composed.cfg.teacher.path)
        teacher = CocoLMTeacher(load_trained_lm(path))
        _check_same_tokenizer(path, data)
        identity = cache_key("checkpoint", str(path.resolve()), checkpoint_steps(path))
        return LoadedTeacher(teacher, identity, str(path))

    def plan(self, composed: ComposedRecipe, *, reads_layer: bool = True) -> TeacherPlan | None:
        path = Path(composed.cfg.teacher.path)
        if not path.is_dir():
            raise CocomixError(f"run folder {path} does not exist; check the path (e.g. teacher.path)")
        config = load_model_config(path)
        return TeacherPlan(config.model_dim, config.num_layers, f"checkpoint {path}")


@TEACHER_SOURCES.register("hf")
class HFTeacherSource(TeacherSource):
    """Any Hugging Face causal LM: the folder or hub name ``teacher.path``, in ``teacher.dtype``."""

    def load(self, composed: ComposedRecipe, cache_dir: Path, data: DataArtifacts) -> LoadedTeacher:
        from cocomix.runtime.hf_teacher import HFCausalLMTeacher, check_positions, resolve_teacher
        from cocomix.runtime.hf_tokenizer_check import check_student_tokenizer

        spec = composed.cfg.teacher
        source = resolve_teacher(str(spec.path))
        teacher = HFCausalLMTeacher(source, dtype=str(spec.dtype))
        check_positions(teacher.shape, source, int(composed.cfg.train.seq_len))
        check_student_tokenizer(source, teacher, data.tokenizer)
        identity = cache_key("hf", str(source.resolve()) if isinstance(source, Path) else source,
                             str(spec.dtype))
        return LoadedTeacher(teacher, identity, str(source))

    def plan(self, composed: ComposedRecipe, *, reads_layer: bool = True) -> TeacherPlan:
        from cocomix.runtime.hf_teacher import check_positions, read_shape, resolve_teacher

        spec = composed.cfg.teacher
        source = resolve_teacher(str(spec.path))
        shape = read_shape(source)
        check_positions(shape, source, int(composed.cfg.train.seq_len))
        name, options = composed.group("tokenizer")
        if not getattr(options, "needs_corpus", False):  # built without training: check it now
            _check_planned_tokenizer(source, shape.vocab_size, name, options)
        return TeacherPlan(shape.model_dim, shape.num_layers,
                           f"hf {source} ({shape.model_type}, {shape.num_layers} blocks, width "
                           f"{shape.model_dim}, vocab {shape.vocab_size}, {spec.dtype})")


_CHECKED_TOKENIZERS: set[tuple[str, int, str, str]] = set()
"""(teacher, its vocabulary, tokenizer, its options) pairs found to match in this process."""


def _check_planned_tokenizer(source: Path | str, teacher_vocab: int, name: str, options: Any) -> None:
    """The student's tokenizer against the teacher's before anything is built, once per (teacher,
    tokenizer) in a process, though every planned run's preflight asks."""
    from cocomix.registry import TOKENIZERS
    from cocomix.runtime.hf_tokenizer_check import check_same_tokenizer

    key = (str(source), teacher_vocab, name, repr(options))
    if key not in _CHECKED_TOKENIZERS:
        check_same_tokenizer(source, teacher_vocab, TOKENIZERS.build(name, options, corpus=None, cache_dir=None))
        _CHECKED_TOKENIZERS.add(key)


def _check_same_tokenizer(teacher_run_dir: Path, data: DataArtifacts) -> None:
    """Equal vocabulary sizes are not enough: the ids must mean the same pieces."""
    from cocomix.data.tokenizer_loading import load_tokenizer

    path = read_artifacts(teacher_run_dir).get("tokenizer")
    if not path:
        return
    if load_tokenizer(path).fingerprint() != data.tokenizer.fingerprint():
        raise CocomixError(
            f"the teacher ({teacher_run_dir}) was trained with another tokenizer ({path}) than "
            f"this run's ({data.tokenizer.path}); teacher and student must share one: set "
            f"tokenizer.model_file={path}, or tokenizer.train_corpus to the teacher's corpus"
        )


__all__ = [
    "TEACHER_SOURCES",
    "LoadedTeacher",
    "TeacherPlan",
    "planned_teacher_recipe",
    "TeacherRun",
    "TeacherSource",
    "teacher_run",
]
