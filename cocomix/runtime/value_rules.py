"""Every top-level recipe value checked by its meaning, in one place, before anything is built.

Hydra checks names and types (``steps=ten`` fails at compose time); these rules check meaning:
a count that must be positive, a probability in [0, 1), a learning rate that is a finite
positive number, a choice among names. Without them a wrong value passed ``--dry-run`` and then
failed minutes later inside fairseq2, torch or numpy, or trained silently wrong (a negative
clipping norm trained uphill). ``check_values`` runs in the preflight (``runtime/preflight.py``),
so ``--dry-run`` and every launch apply it. Each failure is one ``CocomixError`` naming the key,
the value, what it must be, and the fix.

Options of components chosen from a registry are judged here too where the chosen component
has them (``objective.lam``); the components also check their options where they are built,
for use outside a recipe; cross-key rules (warmup below steps, intervals as multiples of
``log_every``) live in ``runtime/recipe.py:check_schedule``, which runs after these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from cocomix.registry import CocomixError, Registry

SEED_LIMIT = 2**32
"""numpy's generators take seeds below 2**32."""


@dataclass(frozen=True)
class Rule:
    key: str
    ok: Callable[[Any], bool]
    meaning: str | Callable[[], str]
    """What the value must be, completing "<key>=<value> must be ..." (a callable for choices
    only known once plugins registered theirs)."""
    only_if_present: bool = False
    """An option of a registry group (``objective.lam``): checked when the chosen component has
    it (``objective=ntp`` has no ``lam``)."""

    def describe(self) -> str:
        return self.meaning() if callable(self.meaning) else self.meaning


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive(key: str, what: str = "") -> Rule:
    return Rule(key, lambda v: _number(v) and v > 0, f"a positive {what or 'number'}")


def at_least_zero(key: str, what: str = "") -> Rule:
    return Rule(key, lambda v: _number(v) and v >= 0, f"zero or more{f' ({what})' if what else ''}")


def in_range(key: str, low: float, high: float, *, high_open: bool = True) -> Rule:
    close = ")" if high_open else "]"
    return Rule(key, lambda v: _number(v) and low <= v and (v < high if high_open else v <= high),
                f"in [{low}, {high}{close}")


def one_of(key: str, *choices: str) -> Rule:
    return Rule(key, lambda v: v in choices, f"one of {', '.join(choices)}")


def registered(key: str, registry: Callable[[], Registry[Any]]) -> Rule:
    """A name of a registry (read when checked, after the run's plugins registered theirs)."""
    return Rule(key, lambda v: v in registry(), lambda: f"one of {', '.join(registry().names())}")


def _teacher_sources() -> Registry[Any]:
    from cocomix.runtime.teacher_sources import TEACHER_SOURCES

    return TEACHER_SOURCES


def _sae_sources() -> Registry[Any]:
    from cocomix.runtime.concept_artifacts import SAE_SOURCES

    return SAE_SOURCES


def seed_rule(key: str) -> Rule:
    return Rule(key, lambda v: isinstance(v, int) and 0 <= v < SEED_LIMIT, f"an integer in 0..{SEED_LIMIT - 1}")


RULES: tuple[Rule, ...] = (
    seed_rule("seed"),
    positive("threads", "number of threads"),
    positive("steps", "number of optimizer steps"),
    positive("checkpoint_every", "number of steps"),
    positive("validate_every", "number of steps"),
    positive("log_every", "number of steps"),
    positive("keep_last_checkpoints", "number of checkpoints"),
    at_least_zero("summary_test_tokens", "0 skips the held-out test score"),
    positive("train.seq_len", "number of tokens"),
    positive("train.micro_batch_size", "number of sequences"),
    positive("train.grad_accum", "number of micro-batches"),
    positive("train.lr", "learning rate"),
    in_range("train.min_lr_ratio", 0.0, 1.0, high_open=False),
    at_least_zero("train.warmup_steps", "steps"),
    in_range("train.beta1", 0.0, 1.0),
    in_range("train.beta2", 0.0, 1.0),
    positive("train.eps"),
    at_least_zero("train.weight_decay"),
    at_least_zero("train.max_grad_norm", "0 turns clipping off"),
    one_of("train.mixed_precision", "auto", "off", "bf16", "fp16"),
    one_of("train.data_parallel", "ddp", "fsdp"),
    positive("valid.batch_size", "number of sequences"),
    at_least_zero("valid.max_batches", "0 scores the whole held-out split"),
    registered("teacher.source", _teacher_sources),
    at_least_zero("teacher.layer", "a block index"),
    one_of("teacher.dtype", "float32", "bfloat16", "float16"),
    registered("sae.source", _sae_sources),
    positive("sae.n_latents", "number of latents"),
    positive("sae.k", "number of active latents"),
    positive("sae.steps", "number of steps"),
    positive("sae.lr", "learning rate"),
    positive("sae.batch_tokens", "number of tokens"),
    positive("sae.seq_len", "number of tokens"),
    seed_rule("sae.seed"),
    # Options of the chosen components, where they have them (also checked by the components
    # themselves when built outside a recipe; here they are caught before anything is built).
    Rule("objective.lam", lambda v: _number(v) and v >= 0, "zero or more (the weight of the objective's "
         "extra loss)", only_if_present=True),
    Rule("objective.temperature", lambda v: _number(v) and v > 0, "a positive number", only_if_present=True),
    Rule("concepts.k_attr", lambda v: isinstance(v, int) and v > 0, "a positive number of labels per token",
         only_if_present=True),
)


RENAMED: dict[tuple[str, str], str] = {
    ("teacher.source", "hf_gpt2"): "hf (any Hugging Face causal LM folder or hub name, GPT-2 included)",
}
"""Values that were renamed: the old spelling is refused with the new one."""


def check_values(cfg: Any) -> None:
    """Raise one ``CocomixError`` for the first value that breaks its rule."""
    for (key, old), new in RENAMED.items():
        if OmegaConf.select(cfg, key, default=None) == old:
            raise CocomixError(f"{key}={old} was renamed; use {key}={new}")
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=None)
        if value is None and rule.only_if_present:
            continue
        if not rule.ok(value):
            raise CocomixError(f"{rule.key}={value!r} must be {rule.describe()}; fix {rule.key}")
    stop_at = cfg.get("stop_at")
    if stop_at is not None and not (isinstance(stop_at, int) and 0 < stop_at <= int(cfg.steps)):
        raise CocomixError(f"stop_at={stop_at!r} must be in 1..steps ({cfg.steps}); fix stop_at")
    for seed in cfg.get("seeds") or []:
        if not (isinstance(seed, int) and 0 <= seed < SEED_LIMIT):
            raise CocomixError(f"seeds holds {seed!r}; every seed must be an integer in 0..{SEED_LIMIT - 1}")


__all__ = ["RULES", "Rule", "check_values"]
