"""Knowledge distillation: the paper's KD baseline (brief §2.2; Table 1, Fig. 4).

loss = CE_next_token + lambda_KD · T^2 · KL(M_con(.|x)/T || M(.|x)/T)

Forward KL from the frozen teacher M_con to the student over the full vocabulary, per position,
averaged over positions; lambda_KD = 0.1 ("consistently demonstrated strong performance",
[paper]). Temperature and averaging are [unconfirmed]: T defaults to 1 (the T^2 factor is then 1).
The teacher is the same model CoCoMix extracts concepts from (GPT-2 124M in the paper), so teacher
and student share one tokenizer; a vocabulary mismatch is refused.

The teacher arrives as ``context.teacher`` (the runtime builds it because the contract says
``teacher=True``; no SAE and no concept source are needed). It is kept out of this
module's submodules so it never reaches the optimizer or a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from cocomix.contracts import MetricValues, ObjectiveContract

from cocomix.objectives.base import Objective, ObjectiveContext, student_config
from cocomix.objectives.terms import kd_loss, next_token_loss, teacher_logits
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import ConceptLM, LossOutput, TeacherLM, TokenBatch


@dataclass
class KDConfig:
    lam: float = 0.1
    """lambda_KD, the weight of the KL term (paper: 0.1)."""
    temperature: float = 1.0
    """Softens teacher and student alike; the KL term is scaled by T^2 (Hinton). Paper: not
    stated, assumed 1."""


def teacher_vocab_size(teacher: Any) -> int | None:
    """The teacher's vocabulary size when it says (HF teachers: ``vocab_size``; a cocomix_lm
    teacher: ``model.config.vocab_size``), else None (then checked on the first batch)."""
    size = getattr(teacher, "vocab_size", None)
    if size is None:
        size = getattr(getattr(getattr(teacher, "model", None), "config", None), "vocab_size", None)
    return int(size) if size is not None else None


def require_teacher(name: str, context: ObjectiveContext) -> TeacherLM:
    """The context's frozen teacher, frozen again here (eval mode: no dropout in the targets)."""
    teacher = context.teacher
    if teacher is None:
        raise CocomixError(
            f"objective={name} needs a teacher; the runtime builds one from the teacher: options"
        )
    if isinstance(teacher, nn.Module):
        teacher.eval()
        teacher.requires_grad_(False)
    return teacher


@dataclass(frozen=True)
class KDMetrics(MetricValues):
    loss_lm: Tensor
    loss_kd: Tensor
    """KL(teacher || student) over the next-token distributions."""


@OBJECTIVES.register("kd", KDConfig)
class KnowledgeDistillation(Objective):
    contract = ObjectiveContract(metrics=KDMetrics, teacher=True)

    def __init__(self, config: KDConfig, context: ObjectiveContext) -> None:
        super().__init__()
        name = self.objective_name()
        if config.lam < 0:
            raise CocomixError(f"objective.lam={config.lam} must be >= 0")
        if config.temperature <= 0:
            raise CocomixError(f"objective.temperature={config.temperature} must be > 0")
        self.check_student(context)
        teacher = require_teacher(name, context)
        vocab = teacher_vocab_size(teacher)
        student_vocab = getattr(student_config(context), "vocab_size", None)
        if vocab is not None and student_vocab is not None and vocab != student_vocab:
            raise CocomixError(
                f"objective={name}: the teacher's vocabulary ({vocab}) differs from the student's "
                f"({student_vocab}); KD needs teacher and student to share one tokenizer"
            )
        self.config = config
        # Not a submodule: the frozen teacher stays out of the optimizer and the checkpoints.
        self.__dict__["teacher"] = teacher

    def compute(self, model: ConceptLM, batch: TokenBatch) -> LossOutput:
        out = model.forward_lm(batch.inputs)
        loss_lm = next_token_loss(out.logits, batch.targets)
        target = teacher_logits(self.teacher, batch.inputs)
        if target.size(-1) != out.logits.size(-1):
            raise CocomixError(
                f"objective={self.objective_name()}: the teacher's vocabulary "
                f"({target.size(-1)}) differs from the student's logits ({out.logits.size(-1)}); "
                f"teacher and student must share one tokenizer"
            )
        loss_kd = kd_loss(out.logits, target, self.config.temperature)
        loss = loss_lm + self.config.lam * loss_kd
        metrics = KDMetrics(loss_lm=loss_lm.detach(), loss_kd=loss_kd.detach())
        return LossOutput(loss=loss, num_targets=batch.targets.numel(), metrics=metrics)


__all__ = ["KDConfig", "KDMetrics", "KnowledgeDistillation", "require_teacher", "teacher_vocab_size"]
