"""BYOL (Grill et al., 2020, "Bootstrap Your Own Latent").

Online network: encoder → projector → predictor ``q``; target network: EMA copy of encoder → projector, no
gradient. With ``p = normalize(q(z_online))`` and ``t = normalize(z_target)`` of the other view, each term is
``‖p − t‖² = 2 − 2·⟨p, t⟩`` (Eq. 2); the loss is symmetric over the two views and averaged over the batch.
Target momentum: ``τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2`` with τ_base = 0.996 (§3.2).
Paper defaults: projector/predictor 2-layer MLP 4096 → 256 with BN.

Global batch under DDP: the loss is per sample (no sample sees another), so each rank's share of the global mean
is already exact; only the projector/predictor BatchNorm couples samples, which ``train.sync_batchnorm`` handles.
Logs are the global values.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.objectives._global_stats import global_log, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of ``2 − 2·cos(prediction, target)``; ``target`` is detached. Inputs ``(B, D)``; under
    DDP the rank's share of the mean over every rank's rows (exact for a short last batch too)."""
    p = F.normalize(prediction.float(), dim=1)
    t = F.normalize(target.detach().float(), dim=1)
    return token_mean(2 - 2 * (p * t).sum(dim=1))


class BYOL(Objective):
    def __init__(self, encoder: Encoder, *, projection_dim: int, hidden_dim: int, momentum: float,
                 momentum_end: float) -> None:
        super().__init__(encoder)
        self.ema = MomentumSchedule(base=momentum, final=momentum_end)
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim)
        self.predictor = MLPHead(in_dim=projection_dim, hidden_dim=hidden_dim, out_dim=projection_dim)
        self.target_encoder = make_teacher(encoder)
        self.target_projector = make_teacher(self.projector)

    @torch.no_grad()
    def _target(self, x: object) -> Tensor:
        return self.target_projector(self.target_encoder(x).pooled)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "BYOL")
        pair = views.global_views[:2]
        h1, h2 = run_views(lambda x: self.encoder(x).pooled, pair)
        p1, p2 = self.predictor(self.projector(torch.cat([h1, h2]))).chunk(2)
        t1, t2 = run_views(self._target, pair)
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(),
                               logs={"regression": global_log(loss), "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.ema.update([(self.target_encoder, self.encoder), (self.target_projector, self.projector)], step=step,
                        total_steps=total_steps)


@OBJECTIVES.register("byol", description="BYOL: online predictor regresses an EMA target network (Grill et al., 2020)")
def build_byol(*, encoder: Encoder, projection_dim: int = 256, hidden_dim: int = 4096, momentum: float = 0.996,
               momentum_end: float = 1.0) -> BYOL:
    """Paper defaults: 2-layer MLPs 4096 → 256 with BN, τ_base = 0.996 cosine-increased to 1."""
    return BYOL(encoder, projection_dim=projection_dim, hidden_dim=hidden_dim, momentum=momentum,
                momentum_end=momentum_end)
