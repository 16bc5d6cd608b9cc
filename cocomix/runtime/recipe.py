"""The one fairseq2 recipe every cocomix run goes through.

`to_fairseq2_config` converts a composed Hydra recipe into fairseq2's recipe config once (model,
trainer, optimizer, LR schedule, regime, common sections); `CocomixRecipe` registers the
`cocomix_lm` model family, our TensorBoard recorder, and builds the data readers, the objective
and the train/validation units for fairseq2's `Trainer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from fairseq2.datasets import SyncMode
from fairseq2.metrics.recorders import MetricRecorder
from fairseq2.recipe import Recipe, RecipeContext
from fairseq2.recipe.config import (
    ActivationCheckpointingConfig,
    AdamWConfig,
    CommonSection,
    CosineAnnealingLRConfig,
    GangSection,
    GradAccumulationConfig,
    LRSchedulerSection,
    MixedPrecisionConfig,
    ModelSection,
    OptimizerSection,
    RegimeSection,
    TrainerSection,
)
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver
from fairseq2.task import Task

from cocomix.data.pipeline import make_reader, train_pipeline, valid_pipeline
from cocomix.models import CocoMixLM, register_cocomix_lm
from cocomix.objectives.base import Objective, ObjectiveContext
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.runtime.artifacts import DataArtifacts
from cocomix.runtime.components import ConceptComponents
from cocomix.runtime.compose import ComposedRecipe
from cocomix.runtime.console import quiet_fairseq2, register_console
from cocomix.runtime.recorder import ProjectTensorBoardRecorder
from cocomix.runtime.run_flops import run_flops_per_token
from cocomix.runtime.rundir import CONFIG_FILE, write_config
from cocomix.runtime.units import ObjectiveTrainUnit, ValidationUnit
from cocomix.runtime.world import name_next_process_groups

FAMILY = "cocomix_lm"


@dataclass(kw_only=True)
class CocomixFs2Config:
    """fairseq2's view of a run: its standard sections plus our resolved config for reference."""

    model: ModelSection
    gang: GangSection = field(default_factory=GangSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    lr_scheduler: LRSchedulerSection = field(default_factory=LRSchedulerSection)
    regime: RegimeSection = field(default_factory=RegimeSection)
    common: CommonSection = field(default_factory=CommonSection)


def _mixed_precision(mode: str) -> MixedPrecisionConfig:
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_available() else "off"
    if mode == "off":
        return MixedPrecisionConfig(mode="off")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if mode not in dtypes:
        raise CocomixError(f"train.mixed_precision={mode!r}; choose off, bf16, fp16 or auto")
    return MixedPrecisionConfig(mode="static", dtype=dtypes[mode])


def model_overrides(
    composed: ComposedRecipe, vocab_size: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """The arch's options as composed, plus what the run decides (vocabulary, mixer, concept
    head settings from `cocomix.runtime.components.model_settings`)."""
    _, model_cfg = composed.group("model")
    overrides = dict(vars(model_cfg))
    overrides["vocab_size"] = vocab_size
    overrides.update(settings)
    mixer = composed.choices["mixer"]
    if overrides.get("mixer", "none") not in ("none", mixer):
        raise CocomixError(
            f"model.mixer={overrides['mixer']!r} conflicts with mixer={mixer!r}; choose the mixer "
            f"with the top-level key (mixer={overrides['mixer']})"
        )
    overrides["mixer"] = mixer
    seq_len = int(composed.cfg.train.seq_len)
    if overrides.get("max_seq_len", 0) < seq_len:
        raise CocomixError(
            f"train.seq_len={seq_len} exceeds model.max_seq_len={overrides.get('max_seq_len')}; "
            f"lower train.seq_len or raise model.max_seq_len"
        )
    return overrides


def check_schedule(cfg: Any) -> None:
    """Every value by its meaning (``value_rules``), then the schedule's cross-key rules. Also
    called when a teacher is trained on demand, which has no preflight of its own."""
    from cocomix.runtime.value_rules import check_values

    check_values(cfg)
    steps = int(cfg.steps)
    if cfg.train.warmup_steps >= steps:
        raise CocomixError(
            f"train.warmup_steps={cfg.train.warmup_steps} must be below steps={steps}"
        )
    for key in ("checkpoint_every", "validate_every"):
        if int(cfg[key]) % int(cfg.log_every) != 0:
            raise CocomixError(
                f"{key}={cfg[key]} must be a multiple of log_every={cfg.log_every} "
                f"(fairseq2 publishes metrics on those steps)"
            )


def to_fairseq2_config(
    composed: ComposedRecipe, vocab_size: int, settings: dict[str, Any]
) -> CocomixFs2Config:
    cfg = composed.cfg
    check_schedule(cfg)
    train = cfg.train
    steps = int(cfg.steps)
    common = CommonSection(seed=int(cfg.seed), no_sweep_dir=True)
    # Our recorder writes TensorBoard with the project's tag names (cocomix.runtime.recorder).
    common.metric_recorders.tensorboard.enabled = False
    return CocomixFs2Config(
        model=ModelSection(
            family=FAMILY,
            arch=composed.choices["model"],
            config_overrides=model_overrides(composed, vocab_size, settings),
            compile=bool(train.compile),
        ),
        trainer=TrainerSection(
            data_parallelism=str(train.data_parallel),
            mixed_precision=_mixed_precision(str(train.mixed_precision)),
            grad_accumulation=GradAccumulationConfig(num_batches=int(train.grad_accum)),
            activation_checkpointing=ActivationCheckpointingConfig(
                mode="layerwise" if train.activation_checkpointing else "off"
            ),
            # 0 means no clipping (fairseq2's None), not clipping every gradient to zero.
            max_grad_norm=float(train.max_grad_norm) or None,
        ),
        optimizer=OptimizerSection(
            name="adamw",
            config=AdamWConfig(
                lr=float(train.lr),
                betas=(float(train.beta1), float(train.beta2)),
                eps=float(train.eps),
                weight_decay=float(train.weight_decay),
            ),
        ),
        lr_scheduler=LRSchedulerSection(
            name="cosine_annealing",
            # The cycle is fixed by `steps`, so `stop_at` shortens the run, not the schedule.
            config=CosineAnnealingLRConfig(
                cycle_len=steps - int(train.warmup_steps),
                num_warmup_steps=int(train.warmup_steps),
                final_lr_scale=float(train.min_lr_ratio),
            ),
        ),
        regime=RegimeSection(
            num_steps=int(cfg.stop_at or steps),
            checkpoint_every_n_steps=int(cfg.checkpoint_every),
            validate_every_n_steps=int(cfg.validate_every),
            publish_metrics_every_n_steps=int(cfg.log_every),
            keep_last_n_checkpoints=int(cfg.keep_last_checkpoints),
        ),
        common=common,
    )


class CocomixRecipe(Recipe):
    def __init__(
        self, composed: ComposedRecipe, data: DataArtifacts, concepts: ConceptComponents,
        label: str = "",
    ) -> None:
        self._composed = composed
        self._data = data
        self._concepts = concepts
        self._label = label or composed.name
        """How the console names this run, e.g. `[add/seed0]`."""

    @property
    def config_kls(self) -> type[object]:
        return CocomixFs2Config

    def register(self, container: DependencyContainer) -> None:
        register_cocomix_lm(container)

        def tb_recorder(resolver: DependencyResolver) -> MetricRecorder:
            return ProjectTensorBoardRecorder(resolver.resolve(Path), self._config_text)

        container.collection.register(MetricRecorder, tb_recorder)
        cfg = self._composed.cfg
        contract = OBJECTIVES.get(self._composed.choices["objective"]).contract
        register_console(container, self._label, int(cfg.stop_at or cfg.steps),
                         metric_names=contract.metric_names())

    @property
    def _config_text(self) -> str:
        return yaml.safe_dump(self._composed.resolved(), sort_keys=False)

    def _restore_user_config(self, context: RecipeContext) -> None:
        """fairseq2 dumps its own view as `config.yaml` just before creating the task; keep it
        as `fairseq2_config.yaml` and put the user's resolved recipe back under `config.yaml`."""
        if context.gangs.root.rank != 0:
            return
        dumped = context.output_dir / CONFIG_FILE
        if dumped.exists():
            dumped.replace(context.output_dir / "fairseq2_config.yaml")
        write_config(context.output_dir, self._composed.resolved())

    def create_task(self, context: RecipeContext) -> Task:
        cfg = self._composed.cfg
        gangs = context.gangs
        self._restore_user_config(context)
        config = context.get_config_as(CocomixFs2Config)
        # Built outside fairseq2's CLI loader, these stay dicts unless structured (stack.md).
        config.optimizer.structure(context.resolver)
        config.lr_scheduler.structure(context.resolver)

        model = context.get_data_parallel_model()
        objective = self._build_objective(context)
        accumulate = int(cfg.train.grad_accum)
        train_reader = make_reader(
            train_pipeline(
                self._data.train,
                seq_len=int(cfg.train.seq_len),
                micro_batch_size=int(cfg.train.micro_batch_size),
                num_accumulate=accumulate,
                seed=int(cfg.seed),
                rank=gangs.dp.rank,
                world_size=gangs.dp.size,
            ),
            gangs,
            num_accumulate=accumulate,
        )
        valid_reader = make_reader(
            valid_pipeline(
                self._data.valid,
                seq_len=int(cfg.train.seq_len),
                batch_size=int(cfg.valid.batch_size),
                max_batches=int(cfg.valid.max_batches),
                rank=gangs.dp.rank,
                world_size=gangs.dp.size,
            ),
            gangs,
            num_accumulate=1,
            # Ranks may hold different numbers of validation batches; read until all are done.
            sync_mode=SyncMode.UNTIL_LAST,
        )
        unit = ObjectiveTrainUnit(
            model,
            objective,
            context.output_dir / "checkpoints",
            # The model card (checkpoints/model.yaml) exists once fairseq2 built the model.
            run_flops_per_token(context.output_dir).total,
            accumulate=accumulate,
            checkpoints=context.get_checkpoint_manager(),
        )
        context.get_optimizer().register_step_pre_hook(unit.check_gradients)
        return context.create_trainer(
            unit,
            train_reader,
            [ValidationUnit(model)],
            [valid_reader],
        )

    def _build_objective(self, context: RecipeContext) -> Objective:
        name, options = self._composed.group("objective")
        device = torch.device(str(context.device))
        # Frozen and outside the student: moved here because fairseq2 only places the model.
        if self._concepts.teacher is not None:
            self._concepts.teacher.to(device)
        if self._concepts.artifacts is not None and self._concepts.artifacts.sae is not None:
            self._concepts.artifacts.sae.to(device)
        student = context.get_model_as(CocoMixLM)
        objective_context = ObjectiveContext(
            device=torch.device(str(context.device)),
            student=student,
            concept_source=self._concepts.source,
            teacher=self._concepts.teacher,
        )
        objective = OBJECTIVES.build(name, options, objective_context)
        if not isinstance(objective, Objective):
            raise CocomixError(
                f"objective {name!r} built a {type(objective).__name__}; objectives must subclass "
                f"cocomix.objectives.Objective"
            )
        return objective.to(torch.device(str(context.device)))


def run_fairseq2(recipe: CocomixRecipe, config: CocomixFs2Config, output_dir: Path) -> None:
    from fairseq2.checkpoint import CheckpointError, CheckpointNotFoundError
    from fairseq2.logging import log
    from fairseq2.recipe import run

    handlers = list(log.logger.handlers)
    name_next_process_groups()
    try:
        with quiet_fairseq2():  # our ProgressRecorder draws the progress instead of fairseq2's bar
            run(recipe, config, output_dir, no_progress=True)
    except (CheckpointError, CheckpointNotFoundError) as err:
        # Resuming read a damaged checkpoint (fairseq2 renames a step into place only when it is
        # complete, so this is damage after the fact: a bad disk, a partial copy, a hand edit).
        step = output_dir / "checkpoints" / f"step_{err.step_nr}"
        raise CocomixError(
            f"cannot resume {output_dir}: its {err.kind} checkpoint of step {err.step_nr} is "
            f"missing or corrupt; restore it, or delete {step} to resume from the step before"
        ) from None
    finally:
        # fairseq2 adds a file handler for <output_dir>/logs per run and never removes it: the
        # next run in this process (another arm, the student after its teacher) would also log
        # into this run's file.
        for handler in log.logger.handlers[:]:
            if handler not in handlers and isinstance(handler, logging.FileHandler):
                log.logger.removeHandler(handler)
                handler.close()
