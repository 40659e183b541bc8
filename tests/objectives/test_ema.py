"""EMA teachers: frozen, excluded from the optimizer, saved in the state dict, updated by the MoCo formula."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from omnissl.core.config import TrainConfig
from omnissl.objectives.ema import cosine_momentum, ema_update, make_teacher
from omnissl.train.optim import build_optimizer


def test_teacher_is_frozen_and_not_optimised_but_saved() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
            self.teacher = make_teacher(self.student)

    pair = Pair()
    assert all(not p.requires_grad for p in pair.teacher.parameters())
    optimised = {id(p) for group in build_optimizer(pair, TrainConfig()).param_groups for p in group["params"]}
    assert optimised == {id(p) for p in pair.student.parameters()}
    assert "teacher.0.weight" in pair.state_dict() and "teacher.1.running_mean" in pair.state_dict()


def test_ema_update_is_the_momentum_formula_and_copies_buffers() -> None:
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = make_teacher(student)
    with torch.no_grad():
        teacher[0].weight.fill_(1.0)
        student[0].weight.fill_(3.0)
        student[1].running_mean.fill_(7.0)
    ema_update(teacher, student, momentum=0.75)
    assert torch.allclose(teacher[0].weight, torch.full((2, 2), 0.75 * 1.0 + 0.25 * 3.0))
    assert torch.equal(teacher[1].running_mean, torch.full((2,), 7.0))


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 100, base=0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, base=0.996) == pytest.approx(1.0)
    # BYOL §3.2: τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2 at k = K/2 is halfway.
    assert cosine_momentum(50, 100, base=0.99) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 2) + 1) / 2)
    values = [cosine_momentum(k, 10, base=0.9) for k in range(11)]
    assert values == sorted(values)
