"""The configurations `tools/bench.py` compares, built from the real recipes.

Each configuration is a student (built from a composed recipe, exactly as a run would build it),
its objective, an AdamW optimizer and, for CoCoMix, a concept source. Teacher and SAE are randomly
initialised at the shapes the recipes name: their cost does not depend on their weights, and
training them (what a real run does once) would take longer than the whole benchmark.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cocomix.runtime.flops import TeacherCost, training_flops_per_token
from cocomix.concepts.sources import ConceptBatch, ConceptSource
from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.registry import CONCEPT_SOURCES, OBJECTIVES
from cocomix.runtime.compose import ComposedRecipe, compose_recipe
from cocomix.types import TokenBatch


@dataclass(frozen=True)
class BenchSize:
    name: str
    overrides: tuple[str, ...]
    """Applied to every recipe on top of the tiny preset (students and teacher alike)."""
    teacher_overrides: tuple[str, ...]
    rounds: int
    """Timed rounds of the interleaved harness (after `warmup`)."""
    warmup: int
    runtime_steps: int
    """Optimizer steps of the full-runtime run (framework overhead)."""


SIZES: dict[str, BenchSize] = {
    # The CPU preset every tiny recipe trains with (recipes/presets/tiny.yaml).
    "bench": BenchSize("bench", (), (), rounds=8, warmup=2, runtime_steps=12),
    # Seconds, for the test: a 2-layer, 64-wide student and teacher.
    "tiny": BenchSize(
        "tiny",
        ("model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256",
         "model.insert_layer=1", "train.seq_len=32", "train.micro_batch_size=4",
         "tokenizer.vocab_size=2000"),
        ("model.num_layers=2", "model.model_dim=64", "model.num_heads=2", "model.ffn_inner_dim=256"),
        rounds=2, warmup=1, runtime_steps=4,
    ),
}
TINY_STUDENT_EXTRA = ("teacher.layer=1", "sae.n_latents=128", "sae.k=8", "model.concept_topk=8")


def student_overrides(size: BenchSize, concepts: bool) -> list[str]:
    extra = list(TINY_STUDENT_EXTRA) if size.name == "tiny" and concepts else []
    return ["preset=tiny", *size.overrides, *extra]


def compose_student(recipe: str, size: BenchSize) -> ComposedRecipe:
    return compose_recipe(recipe, student_overrides(size, recipe != "pretrain/ntp"))


def model_config(composed: ComposedRecipe, vocab: int) -> Any:
    from cocomix.models import CocoLMConfig
    from cocomix.runtime.components import planned_model_settings
    from cocomix.runtime.recipe import model_overrides

    return CocoLMConfig(**model_overrides(composed, vocab, planned_model_settings(composed)))


def build_model(config: Any, seed: int = 0) -> nn.Module:
    from cocomix.models import create_cocomix_lm

    torch.manual_seed(seed)
    return create_cocomix_lm(config)


def vocab_size(composed: ComposedRecipe) -> int:
    return int(composed.cfg.tokenizer.vocab_size)


def build_teacher(student: ComposedRecipe, size: BenchSize) -> tuple[nn.Module, Any]:
    """A random teacher of the shape `teacher.recipe` gives at the student's preset."""
    from cocomix.runtime.teacher import CocoLMTeacher

    spec = student.cfg.teacher
    composed = compose_recipe(
        str(spec.recipe), [f"preset={student.preset}", *spec.overrides, *size.teacher_overrides]
    )
    config = model_config(composed, vocab_size(student))
    return CocoLMTeacher(build_model(config, seed=1)), config


def build_source(student: ComposedRecipe, size: BenchSize, cache_dir: Path | None) -> tuple[ConceptSource, TeacherCost]:
    """The recipe's concept source over a random teacher and SAE; `cache_dir` wraps it in
    `concepts=cached` (labels computed once, then read from disk)."""
    from cocomix.concepts.cached import CacheContext, CachedConfig
    from cocomix.concepts.sae import TopKSAE

    teacher, teacher_config = build_teacher(student, size)
    sae_cfg = student.cfg.sae
    sae = TopKSAE(teacher_config.model_dim, int(sae_cfg.n_latents), int(sae_cfg.k),
                  generator=torch.Generator().manual_seed(2))
    layer = int(student.cfg.teacher.layer)
    _, options = student.group("concepts")
    context = CacheContext(teacher=teacher, sae=sae, layer=layer, cache_dir=cache_dir,
                           key_parts={"bench": size.name},
                           micro_batch_size=int(student.cfg.train.micro_batch_size))
    if cache_dir is not None:
        cached = CachedConfig(source=student.choices["concepts"], k_attr=int(options.k_attr))
        source = CONCEPT_SOURCES.build("cached", cached, context)
    else:
        source = CONCEPT_SOURCES.build(student.choices["concepts"], options, context)
    cost = TeacherCost.from_config(teacher_config, layer, mode="attribution",
                                   sae_latents=int(sae_cfg.n_latents), sae_k=int(sae_cfg.k))
    return source, cost


class InMemoryLabels(ConceptSource):
    """Labels computed before timing and held in memory: the student-only lower bound."""

    def __init__(self, batches: list[TokenBatch], labels: list[Tensor], num_concepts: int) -> None:
        self.batches = batches
        self.labels = labels
        self.num_concepts = num_concepts

    def targets(self, tokens: Tensor, *, sample_index: Tensor | None = None) -> ConceptBatch:
        # By sample index when given; else by content (`cached` asks its writer without one).
        for batch, labels in zip(self.batches, self.labels):
            if sample_index is not None and int(sample_index[0]) == int(batch.sample_index[0]):  # type: ignore[index]
                return ConceptBatch(labels=labels)
            if sample_index is None and torch.equal(batch.inputs, tokens):
                return ConceptBatch(labels=labels)
        raise KeyError("no precomputed labels for this batch")


@dataclass
class Setup:
    """One configuration: model, objective and optimizer, stepped by `step`."""

    name: str
    model: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    flops_per_token: float
    max_grad_norm: float
    extra: dict[str, Any] = field(default_factory=dict)

    def forward_lm(self, tokens: Tensor) -> Any:
        return self.model(tokens)

    def step(self, batch: TokenBatch) -> float:
        out = self.objective.compute(self, batch)
        out.loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(out.loss.detach())


def make_setup(name: str, composed: ComposedRecipe, source: ConceptSource | None,
               teacher: TeacherCost | None) -> Setup:
    config = model_config(composed, vocab_size(composed))
    model = build_model(config)
    model.train()
    obj_name, options = composed.group("objective")
    context = ObjectiveContext(student=model, concept_source=source)
    objective = OBJECTIVES.build(obj_name, options, context)
    train = composed.cfg.train
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(train.lr),
                                  betas=(float(train.beta1), float(train.beta2)),
                                  eps=float(train.eps), weight_decay=float(train.weight_decay))
    flops = training_flops_per_token(config, int(train.seq_len), teacher=teacher).total
    return Setup(name, model, objective, optimizer, flops, float(train.max_grad_norm),
                 {"config": config})


def random_batches(composed: ComposedRecipe, count: int, seed: int = 0) -> list[TokenBatch]:
    """`count` micro-batches of random tokens with consecutive sample indices (cost does not
    depend on the token values; `cached` needs whole micro-batches of consecutive samples)."""
    train = composed.cfg.train
    b, t = int(train.micro_batch_size), int(train.seq_len) + 1
    gen = torch.Generator().manual_seed(seed)
    return [TokenBatch(torch.randint(0, vocab_size(composed), (b, t), generator=gen),
                       torch.arange(i * b, (i + 1) * b)) for i in range(count)]


def build_setups(size: BenchSize, names: list[str], batches_needed: int,
                 cache_root: Path | None = None) -> tuple[dict[str, Setup], list[TokenBatch]]:
    """Setups by name: `ntp`, `cocomix_memory` (labels precomputed in memory),
    `cocomix_cached` (`concepts=cached` on disk, filled before timing), `cocomix_online`."""
    ntp = compose_student("pretrain/ntp", size)
    coco = compose_student("pretrain/cocomix", size)
    batches = random_batches(coco, batches_needed)
    setups: dict[str, Setup] = {}
    if "ntp" in names:
        setups["ntp"] = make_setup("ntp", ntp, None, None)
    if not any(name.startswith("cocomix") for name in names):
        return setups, batches
    online, teacher_cost = build_source(coco, size, None)
    if "cocomix_online" in names:
        setups["cocomix_online"] = make_setup("cocomix_online", coco, online, teacher_cost)
    memory = None
    if "cocomix_memory" in names:
        labels = [online.targets(b.inputs).labels for b in batches]
        memory = InMemoryLabels(batches, labels, online.num_concepts)  # type: ignore[arg-type]
        setups["cocomix_memory"] = make_setup("cocomix_memory", coco, memory, None)
    if "cocomix_cached" in names:
        root = cache_root or Path(tempfile.mkdtemp(prefix="cocomix-bench-"))
        cached, _ = build_source(coco, size, root)
        # Fill the cache before timing (the timed steps only read it); from the labels already
        # computed when there are some, so the teacher runs once per batch, not twice.
        writer = getattr(cached, "online", None)
        if memory is not None:
            cached.online = memory  # type: ignore[attr-defined]
        for batch in batches:
            cached.targets(batch.inputs, sample_index=batch.sample_index)
        if memory is not None:
            cached.online = writer  # type: ignore[attr-defined]
        setups["cocomix_cached"] = make_setup("cocomix_cached", coco, cached, None)
    for name, setup in setups.items():
        setup.extra["tokens_per_step"] = int(batches[0].inputs.numel())
        setup.extra["recipe"] = "pretrain/ntp" if name == "ntp" else "pretrain/cocomix"
    return setups, batches
