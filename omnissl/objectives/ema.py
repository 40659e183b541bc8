"""Momentum (EMA) teachers shared by MoCo, BYOL, DINO and data2vec.

The teacher is a deep copy of the student with ``requires_grad=False`` on every parameter, so the optimizer never
sees it (``omnissl.train.optim.parameter_groups`` skips frozen parameters) while ``state_dict`` still saves it.
After each optimizer step ``ema_update`` moves it towards the student:
``θ_teacher ← m·θ_teacher + (1 − m)·θ_student`` (He et al., 2020, MoCo, Eq. 2).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen copy of ``student``: same weights now, never optimised, updated only by :func:`ema_update`."""
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, *, momentum: float) -> None:
    """``teacher ← momentum·teacher + (1 − momentum)·student`` for parameters; buffers (BN statistics) are copied.

    Both modules must have the same structure (the teacher was made by :func:`make_teacher`).
    """
    teacher_params = list(teacher.parameters())
    student_params = list(student.parameters())
    if len(teacher_params) != len(student_params):
        raise ValueError(f"EMA teacher has {len(teacher_params)} parameters, student {len(student_params)}")
    for t, s in zip(teacher_params, student_params):
        # lerp in float32 keeps a high momentum (0.999+) meaningful even if the student is half precision.
        t.lerp_(s.detach().to(t.dtype), 1.0 - momentum)
    for t_buf, s_buf in zip(teacher.buffers(), student.buffers()):
        t_buf.copy_(s_buf)


def cosine_momentum(step: int, total_steps: int, *, base: float, final: float = 1.0) -> float:
    """BYOL's schedule (Grill et al., 2020, §3.2): ``m = final − (final − base)·(cos(π·k/K) + 1)/2``.

    ``step`` k is 0-based, ``total_steps`` K ≥ 1; equals ``base`` at k=0 and ``final`` at k=K.
    """
    progress = min(1.0, max(0.0, step / max(1, total_steps)))
    return final - (final - base) * (math.cos(math.pi * progress) + 1) / 2
