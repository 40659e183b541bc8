"""DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers").

Student = encoder → :class:`DINOHead` (K outputs); teacher = EMA copy of both, no gradient. The teacher sees
the 2 global views only, the student all views (2 global + K local crops). For teacher output ``t (B, K)`` of
global view i and student output ``s (B, K)`` of view v ≠ i:
``H(t, s) = −Σ_k softmax((t − c)/τ_t)[k] · log softmax(s/τ_s)[k]``, averaged over the batch and all (i, v) pairs
(Algorithm 1). Under DDP the loss is each rank's share of the global-batch mean and the centre is the global
batch mean (all-reduced), so the method does not change with the number of ranks. Centering ``c (1, K)``: ``c ← m·c + (1 − m)·mean_batch(t)`` with m = 0.9 (after each loss).
Sharpening: τ_t warms up linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over ``warmup_teacher_steps``;
τ_s = 0.1. Teacher momentum cosine 0.996 → 1. Paper: K = 65536, head 2048 hidden, 256 bottleneck.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.objectives._global_stats import batch_mean_nograd, global_log, sample_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.heads import DINOHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def dino_cross_entropy(teacher: list[Tensor], student: list[Tensor], center: Tensor, *, teacher_temp: float,
                       student_temp: float) -> Tensor:
    """Mean over pairs (teacher global i, student view v ≠ i) of ``H(t_i, s_v)``; lists of ``(B, K)`` tensors.

    Student view v pairs with teacher view i when ``v != i``: the first ``len(teacher)`` student views are the
    same global crops the teacher saw.
    """
    targets = [F.softmax((t.detach().float() - center) / teacher_temp, dim=-1) for t in teacher]
    log_probs = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student]
    total, terms = log_probs[0].new_zeros(()), 0
    for i, q in enumerate(targets):
        for v, logp in enumerate(log_probs):
            if v == i:
                continue
            total = total - sample_mean((q * logp).sum(dim=-1))
            terms += 1
    return total / terms


def teacher_temperature(step: int, *, warmup: float, final: float, warmup_steps: int) -> float:
    """Linear warm-up ``warmup → final`` over ``warmup_steps`` steps (0-based ``step``), then ``final``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return final
    return warmup + (final - warmup) * step / warmup_steps


class DINO(Objective):
    def __init__(self, encoder: Encoder, *, out_dim: int, hidden_dim: int, bottleneck_dim: int,
                 student_temp: float, teacher_temp: float, warmup_teacher_temp: float, warmup_teacher_steps: int,
                 center_momentum: float, momentum: float, momentum_end: float,
                 evaluate: Literal["teacher", "student"]) -> None:
        super().__init__(encoder)
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.warmup_teacher_temp, self.warmup_teacher_steps = warmup_teacher_temp, warmup_teacher_steps
        self.center_momentum = center_momentum
        self.ema = MomentumSchedule(base=momentum, final=momentum_end)
        self.evaluate = evaluate
        self.head = DINOHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim,
                             out_dim=out_dim)
        self.teacher_encoder = make_teacher(encoder)
        self.teacher_head = make_teacher(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    @property
    def towers(self) -> dict[str, Encoder]:
        # The paper evaluates the teacher, which is consistently better than the student (§5.2, Fig. 6).
        return {self.tower_name: self.teacher_encoder if self.evaluate == "teacher" else self.encoder}  # type: ignore[dict-item]

    @torch.no_grad()
    def update_center(self, teacher_outputs: Tensor) -> None:
        """``c ← m·c + (1 − m)·mean(teacher_outputs)`` over all global-view rows ``(N, K)`` of **every rank**
        (DINO's all-reduced centre), so every rank keeps the same centre, the single-process one of the global batch."""
        batch_center = batch_mean_nograd(teacher_outputs.float())
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "DINO")
        global_views = views.global_views[:2]
        with torch.no_grad():
            teacher = run_views(lambda x: self.teacher_head(self.teacher_encoder(x).pooled), global_views)
        h = run_views(lambda x: self.encoder(x).pooled, global_views + views.local_views)
        student = self.head(torch.cat(h)).split([x.shape[0] for x in h])
        temp = teacher_temperature(int(self.steps_done), warmup=self.warmup_teacher_temp, final=self.teacher_temp,
                                   warmup_steps=self.warmup_teacher_steps)
        loss = dino_cross_entropy(teacher, list(student), self.center, teacher_temp=temp,
                                  student_temp=self.student_temp)
        if self.training:
            self.update_center(torch.cat(teacher))
        return ObjectiveOutput(loss=loss, embeddings=h[0].detach(),
                               logs={"dino_ce": global_log(loss), "teacher_temp": temp,
                                     "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.steps_done.fill_(step + 1)
        self.ema.update([(self.teacher_encoder, self.encoder), (self.teacher_head, self.head)], step=step,
                        total_steps=total_steps)


@OBJECTIVES.register("dino", description="DINO: self-distillation with a centred, sharpened EMA teacher (Caron et al., 2021)")
def build_dino(*, encoder: Encoder, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
               student_temp: float = 0.1, teacher_temp: float = 0.04, warmup_teacher_temp: float = 0.04,
               warmup_teacher_steps: int = 0, center_momentum: float = 0.9, momentum: float = 0.996,
               momentum_end: float = 1.0, evaluate: Literal["teacher", "student"] = "teacher") -> DINO:
    """Paper defaults: K=65536, τ_s=0.1, τ_t=0.04 (0.04→0.07 warm-up over 30 epochs for longer runs),
    center momentum 0.9, teacher momentum 0.996 → 1 (cosine)."""
    return DINO(encoder, out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim,
                student_temp=student_temp, teacher_temp=teacher_temp, warmup_teacher_temp=warmup_teacher_temp,
                warmup_teacher_steps=warmup_teacher_steps, center_momentum=center_momentum, momentum=momentum,
                momentum_end=momentum_end, evaluate=evaluate)
