"""KD, kd_pause and pause objectives on hand-made cases (brief §2.2-2.3)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from cocomix.objectives.base import ObjectiveContext
from cocomix.objectives.kd import KDConfig, KnowledgeDistillation
from cocomix.objectives.ntp import NextTokenPrediction
from cocomix.objectives.pause import KDPause, KDPauseConfig, PauseConfig, PauseNTP
from cocomix.objectives.terms import kd_loss, next_token_loss, teacher_logits
from cocomix.registry import OBJECTIVES, CocomixError
from cocomix.types import ModelOutput, TokenBatch

B, T, V = 2, 5, 11


class FixedModel:
    def __init__(self, logits: Tensor) -> None:
        self.logits = logits

    def forward_lm(self, tokens: Tensor) -> ModelOutput:
        assert tokens.shape == (B, T)
        return ModelOutput(logits=self.logits)


class FixedTeacher(nn.Module):
    """A TeacherLM whose logits are fixed; a parameter checks it stays out of the objective."""

    num_layers = 2

    def __init__(self, logits: Tensor, vocab_size: int | None = None) -> None:
        super().__init__()
        self.fixed = logits
        self.model_dim = logits.size(-1)
        self.scale = nn.Parameter(torch.ones(()))
        if vocab_size is not None:
            self.vocab_size = vocab_size
        self.calls: list[bool] = []

    def hidden_at(self, tokens: Tensor, layer: int) -> Tensor:
        raise AssertionError("KD reads the teacher's logits only")

    def logits(self, tokens: Tensor, layer: int | None = None, edit=None) -> Tensor:
        assert layer is None and edit is None and tokens.shape == (B, T)
        self.calls.append(torch.is_grad_enabled())
        return self.fixed * self.scale


def batch() -> TokenBatch:
    return TokenBatch(torch.randint(0, V, (B, T + 1), generator=torch.Generator().manual_seed(1)))


def logits(seed: int) -> Tensor:
    return torch.randn(B, T, V, generator=torch.Generator().manual_seed(seed))


def kd(teacher: nn.Module, **options: float) -> KnowledgeDistillation:
    context = ObjectiveContext(teacher=teacher)
    return KnowledgeDistillation(KDConfig(**options), context)


def test_identical_teacher_and_student_give_zero_kl() -> None:
    student = logits(0)
    model, b = FixedModel(student), batch()
    out = kd(FixedTeacher(student.clone())).compute(model, b)
    assert out.metrics["loss_kd"].abs().item() < 1e-6
    torch.testing.assert_close(out.loss, next_token_loss(student, b.targets))
    assert set(out.metrics) == {"loss_lm", "loss_kd"} == set(KnowledgeDistillation.contract.metric_names())
    assert out.num_targets == B * T


def test_kd_is_lm_plus_lambda_forward_kl() -> None:
    student, target = logits(0), logits(1)
    model, b = FixedModel(student), batch()
    out = kd(FixedTeacher(target), lam=0.3).compute(model, b)
    p = target.softmax(-1)
    kl = (p * (p.log() - student.log_softmax(-1))).sum(-1).mean()  # KL(teacher || student)
    torch.testing.assert_close(out.metrics["loss_kd"], kl)
    torch.testing.assert_close(out.loss, next_token_loss(student, b.targets) + 0.3 * kl)
    # Forward, not reverse, KL.
    q = student.softmax(-1)
    reverse = (q * (q.log() - target.log_softmax(-1))).sum(-1).mean()
    assert abs(kl.item() - reverse.item()) > 1e-4


def test_kd_temperature_hand_values() -> None:
    # One position, V = 2: teacher (0, 0) -> p = (1/2, 1/2); student (ln 3, 0).
    t = torch.tensor([[[0.0, 0.0]]])
    s = torch.tensor([[[math.log(3.0), 0.0]]])
    # T = 1: q = (3/4, 1/4); KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
    assert kd_loss(s, t, 1.0).item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)
    # T = 2: q = (sqrt3, 1) / (sqrt3 + 1); the KL is multiplied by T^2 = 4.
    r = math.sqrt(3.0)
    kl2 = 0.5 * math.log(0.5 * (r + 1) / r) + 0.5 * math.log(0.5 * (r + 1))
    assert kd_loss(s, t, 2.0).item() == pytest.approx(4 * kl2, abs=1e-6)


def test_kd_temperature_is_t_squared_times_softened_kl() -> None:
    s, t = logits(2), logits(3)
    for temperature in (0.5, 2.0, 4.0):
        soft = F.kl_div((s / temperature).log_softmax(-1).flatten(0, 1),
                        (t / temperature).log_softmax(-1).flatten(0, 1),
                        log_target=True, reduction="batchmean")
        torch.testing.assert_close(kd_loss(s, t, temperature), soft * temperature**2)


def test_teacher_runs_without_gradients_and_stays_out_of_the_objective() -> None:
    teacher = FixedTeacher(logits(1))
    objective = kd(teacher)
    out = objective.compute(FixedModel(logits(0).requires_grad_()), batch())
    out.loss.backward()
    assert teacher.calls == [False]
    assert teacher.scale.grad is None and not teacher.training
    assert list(objective.parameters()) == [] and objective.state_dict() == {}
    with torch.no_grad():
        torch.testing.assert_close(teacher_logits(teacher, batch().inputs), teacher.fixed)


def test_kd_options_and_teacher_are_checked() -> None:
    teacher = FixedTeacher(logits(1))
    with pytest.raises(CocomixError, match="lam=-0.1 must be >= 0"):
        kd(teacher, lam=-0.1)
    with pytest.raises(CocomixError, match="temperature=0.0 must be > 0"):
        kd(teacher, temperature=0.0)
    with pytest.raises(CocomixError, match="objective=kd needs a teacher"):
        KnowledgeDistillation(KDConfig(), ObjectiveContext())
    # Vocabulary: declared by the teacher (checked at construction) ...
    student = SimpleNamespace(config=SimpleNamespace(vocab_size=V, mixer="none"))
    context = ObjectiveContext(teacher=FixedTeacher(logits(1), vocab_size=V + 1),
                                          student=student)
    with pytest.raises(CocomixError, match=r"teacher's vocabulary \(12\) differs.*\(11\)"):
        KnowledgeDistillation(KDConfig(), context)
    # ... or found on the first batch.
    wide = FixedTeacher(torch.randn(B, T, V + 3))
    with pytest.raises(CocomixError, match=r"teacher's vocabulary \(14\) differs"):
        kd(wide).compute(FixedModel(logits(0)), batch())


def test_declarations() -> None:
    assert KnowledgeDistillation.contract.teacher and KnowledgeDistillation.contract.implied_mixer is None
    assert not KnowledgeDistillation.contract.concept_head
    assert not KnowledgeDistillation.contract.concept_source
    assert KDPause.contract.teacher and KDPause.contract.implied_mixer == "pause"
    assert PauseNTP.contract.implied_mixer == "pause" and not PauseNTP.contract.teacher
    for name, cls, config in [("kd", KnowledgeDistillation, KDConfig),
                              ("kd_pause", KDPause, KDPauseConfig),
                              ("pause", PauseNTP, PauseConfig)]:
        entry = OBJECTIVES.get(name)
        assert entry.factory is cls and entry.config_cls is config


def test_pause_is_ntp_and_kd_pause_is_kd() -> None:
    student, target = logits(0), logits(1)
    model, b = FixedModel(student), batch()
    pause = PauseNTP(PauseConfig()).compute(model, b)
    ntp = NextTokenPrediction(PauseConfig()).compute(model, b)
    torch.testing.assert_close(pause.loss, ntp.loss)
    context = ObjectiveContext(teacher=FixedTeacher(target))
    torch.testing.assert_close(KDPause(KDPauseConfig(), context).compute(model, b).loss,
                               kd(FixedTeacher(target)).compute(model, b).loss)


def test_implied_mixer_is_checked_against_the_student() -> None:
    none_student = SimpleNamespace(config=SimpleNamespace(vocab_size=V, mixer="none"))
    with pytest.raises(CocomixError, match="objective=pause is defined with mixer=pause, but the "
                                           "student was built with mixer=none"):
        PauseNTP(PauseConfig(), ObjectiveContext(student=none_student))
    context = ObjectiveContext(student=none_student, teacher=FixedTeacher(logits(1)))
    with pytest.raises(CocomixError, match="objective=kd_pause is defined with mixer=pause"):
        KDPause(KDPauseConfig(), context)
    pause_student = SimpleNamespace(config=SimpleNamespace(vocab_size=V, mixer="pause"))
    PauseNTP(PauseConfig(), ObjectiveContext(student=pause_student))
