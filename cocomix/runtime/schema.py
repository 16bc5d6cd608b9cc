"""The typed schema every recipe is composed against.

Hydra validates the composed YAML against these dataclasses, so a misspelt key or a value of the
wrong type fails at compose time. Components chosen from a registry (``model=``, ``data=``,
``objective=`` ...) are Hydra config groups whose options are generated from the registries
(``cocomix.runtime.compose``), so each accepts exactly the registered names and types its options
with the component's own config dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


@dataclass
class TrainSchema:
    """Optimisation; defaults are the paper's 69M setting (paper brief §3)."""

    seq_len: int = 1024
    micro_batch_size: int = 8
    """Sequences per rank per forward pass; the global batch is this x world size x grad_accum."""
    grad_accum: int = 64
    lr: float = 6e-4
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr x min_lr_ratio (the paper's `cosine_with_min_lr`, 10%)."""
    warmup_steps: int = 130
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (paper: 1.0); 0 turns clipping off."""
    mixed_precision: str = "auto"
    """off | bf16 | fp16 | auto (bf16 on CUDA, off on CPU, where bf16 is ~20x slower)."""
    data_parallel: str = "ddp"
    """ddp | fsdp."""
    activation_checkpointing: bool = False
    compile: bool = False


@dataclass
class ValidSchema:
    batch_size: int = 8
    max_batches: int = 100
    """Validation batches per rank (0 = the whole held-out split)."""


@dataclass
class TeacherSchema:
    """The frozen concept-extraction LM (paper §2.1: GPT-2 124M; on CPU a small LM we train)."""

    source: str = "recipe"
    """recipe (train `recipe` once and reuse it) | checkpoint (a cocomix run folder) | hf (any
    Hugging Face causal LM: a folder, or a hub name where the hub is reachable)."""
    recipe: str = "pretrain/teacher"
    overrides: list[str] = field(default_factory=list)
    """Extra overrides for the producing recipe (the consumer's preset is passed on)."""
    path: str = ""
    """The teacher for `checkpoint` (a run folder) and `hf` (a folder or a hub name)."""
    layer: int = 5
    """Concepts are read from the residual after block `layer` (GPT-2 `blocks.5.hook_resid_post`)."""
    dtype: str = "float32"
    """float32 | bfloat16 | float16: the frozen teacher's weights and forward pass (part of every
    artifact key built from it)."""


@dataclass
class SAESchema:
    """The TopK SAE on the teacher's residual stream (paper §2.1: OpenAI's 32k-latent SAE)."""

    source: str = "train"
    """train (train on the teacher once and reuse it) | file (an OpenAI-format state dict) |
    saelens (an SAE as SAELens saves it: `path`, or `release` + `id` from SAELens's registry)."""
    path: str = ""
    release: str = ""
    """SAELens registry release, e.g. gpt2-small-resid-post-v5-32k (`saelens` without `path`)."""
    id: str = ""
    """The SAE's id in that release, e.g. blocks.5.hook_resid_post."""
    n_latents: int = 32768
    """Concepts C; an SAE read from disk must have exactly this many (it sizes the student's head
    before the SAE is read)."""
    k: int = 32
    """Active latents per token: the TopK of an SAE trained here or a TopK file; for a SAELens SAE
    without a fixed k (standard, jumprelu, gated), the most active latents kept as its code."""
    steps: int = 2000
    lr: float = 1e-3
    batch_tokens: int = 4096
    seq_len: int = 128
    """Teacher context length when collecting activations for SAE training."""
    seed: int = 0


@dataclass
class RecipeSchema:
    """Top-level keys of every recipe (``recipes/base.yaml`` fills them)."""

    description: str = ""
    task: str = "lm"
    """lm (train a language model with fairseq2's trainer) | sae (train the concept SAE)."""
    seed: int = 22
    steps: int = 40_000
    """Optimizer steps; also the length of the learning-rate schedule."""
    stop_at: Optional[int] = None
    """Stop after this step with a checkpoint, keeping the schedule of `steps`."""
    checkpoint_every: int = 1000
    validate_every: int = 1000
    log_every: int = 10
    keep_last_checkpoints: int = 2
    threads: int = 2
    """Intra-op CPU threads of this run and of the artifacts it builds (SAE, labels): some torch
    kernels split their sums by thread count, so the count is part of the result and comes from
    the recipe, not from the machine's cores or OMP_NUM_THREADS (docs/reliability.md)."""
    preset: str = "auto"
    """tiny | paper | auto (tiny on a machine without a GPU). Applied before command-line overrides."""
    width_matched: bool = False
    """Use the arch's width-matched sibling `<arch>_ntp` (paper §3: NTP, KD and pause baselines are
    widened to CoCoMix's active parameter count)."""
    preset_overrides: dict[str, list[str]] = field(default_factory=dict)
    """Recipe-specific overrides per preset (e.g. `tiny: [steps=400]`), applied after the preset."""
    plugins: list[str] = field(default_factory=list)
    """Modules imported before the registries are read (third-party components)."""
    teacher: TeacherSchema = field(default_factory=TeacherSchema)
    sae: SAESchema = field(default_factory=SAESchema)
    train: TrainSchema = field(default_factory=TrainSchema)
    valid: ValidSchema = field(default_factory=ValidSchema)
    # Registry-backed groups; their option names and types come from the registries.
    model: Any = MISSING
    data: Any = MISSING
    tokenizer: Any = MISSING
    objective: Any = MISSING
    mixer: Any = MISSING
    concepts: Any = MISSING
    arms: dict[str, list[str]] = field(default_factory=dict)
    """Ablation arms: arm name -> overrides for that arm (empty: one arm called `main`)."""
    seeds: list[int] = field(default_factory=list)
    """Seeds to run each arm with (empty: just `seed`)."""
    summary_test_tokens: int = 20_000
    """Held-out test tokens per pd_english source scored for the summary (0: skip)."""
    only_arms: list[str] = field(default_factory=list)
    """Run just these arms of a multi-arm recipe (empty: all)."""
    baseline_arm: str = ""
    """The arm the summary compares the others with (tokens to reach its final validation loss);
    empty: ``ntp`` when the recipe has that arm, else no comparison."""
    reports: list[str] = field(default_factory=list)
    """Extra analyses of the finished runs, by name (``cocomix.analysis.reports.REPORTS``)."""


# Top-level keys that select a registry entry, in the order they are listed.
GROUP_KEYS: tuple[str, ...] = ("model", "data", "tokenizer", "objective", "mixer", "concepts")

# Keys a run may change without being a different experiment (resume with or without them):
# `stop_at` only shortens it; `seeds`/`arms` say which sibling runs a recipe makes, and each
# run's own settings are compared key by key anyway.
RESUME_NEUTRAL_KEYS: tuple[str, ...] = (
    "stop_at", "seeds", "arms", "only_arms", "summary_test_tokens", "baseline_arm", "reports",
)

# Keys added to the schema after cached teachers were first keyed by their resolved config: left
# out of a cached teacher's identity while they hold their default, so adding them did not
# retrain every cached teacher; a value set on purpose is part of the identity.
IDENTITY_NEUTRAL_AT_DEFAULT: dict[str, Any] = {
    "teacher.dtype": TeacherSchema.dtype,
    "sae.release": SAESchema.release,
    "sae.id": SAESchema.id,
}
