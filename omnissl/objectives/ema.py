"""Momentum (EMA) teachers shared by MoCo v2/v3, BYOL, DINO and data2vec.

The teacher is a deep copy of the student with ``requires_grad=False`` on every parameter, so the optimizer never
sees it (``omnissl.train.optim.parameter_groups`` skips frozen parameters) while ``state_dict`` still saves it.
After each optimizer step ``ema_update`` moves it towards the student:
``θ_teacher ← m·θ_teacher + (1 − m)·θ_student`` (He et al., 2020, MoCo, Eq. 2).

:class:`MomentumSchedule` is the one place the momentum ``m`` is scheduled and applied: an objective makes one
(``self.ema = MomentumSchedule(base=…, final=…)``) and calls ``self.ema.update(pairs, step=, total_steps=)`` from
``on_step_end``. The current momentum lives in a buffer, so a checkpoint carries it and a resumed run logs it.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal, Sequence

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


def linear_momentum(step: int, total_steps: int, *, base: float, final: float) -> float:
    """data2vec's schedule (Baevski et al., 2022, §3.3): linear from ``base`` to ``final`` over the run, reaching
    ``base + (final − base)·(k + 1)/K`` after the 0-based step k (``final`` after the last one)."""
    progress = min(1.0, (step + 1) / max(1, total_steps))
    return base + (final - base) * progress


class MomentumSchedule(nn.Module):
    """The EMA-teacher momentum of one objective: ``cosine`` (BYOL, MoCo, DINO) or ``linear`` (data2vec) from
    ``base`` to ``final``; :meth:`update` sets it for the step just done and moves every ``(teacher, student)``
    pair. ``momentum`` (a float32 buffer, in checkpoints) holds the value last applied; logs read
    :attr:`current`, which is the exact float used (the buffer only matters after a resume)."""

    def __init__(self, *, base: float, final: float, schedule: Literal["cosine", "linear"] = "cosine") -> None:
        super().__init__()
        if schedule not in ("cosine", "linear"):
            raise ValueError(f"momentum schedule must be 'cosine' or 'linear', got {schedule!r}")
        self.base, self.final, self.schedule = base, final, schedule
        self.register_buffer("momentum", torch.tensor(base, dtype=torch.float32))
        self._current: float | None = base

    @property
    def current(self) -> float:
        return self._current if self._current is not None else float(self.momentum)

    def value_at(self, step: int, total_steps: int) -> float:
        if self.schedule == "linear":
            return linear_momentum(step, total_steps, base=self.base, final=self.final)
        return cosine_momentum(step, total_steps, base=self.base, final=self.final)

    @torch.no_grad()
    def update(self, pairs: Sequence[tuple[nn.Module, nn.Module]], *, step: int, total_steps: int) -> float:
        """After optimizer step ``step`` (0-based): set the momentum and EMA-update each teacher from its student."""
        value = self.value_at(step, total_steps)
        self._current = value
        self.momentum.fill_(value)
        for teacher, student in pairs:
            ema_update(teacher, student, momentum=value)
        return value

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Checkpoints written before the momentum was a buffer lack the key: they resume with the schedule's start,
        # as they did then, instead of failing a strict load.
        state_dict.setdefault(prefix + "momentum", torch.tensor(self.base, dtype=torch.float32))
        self._current = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
