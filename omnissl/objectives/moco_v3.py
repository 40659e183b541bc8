"""MoCo v3 (Chen, Xie & He, 2021, "An Empirical Study of Training Self-Supervised Vision Transformers").

No queue: keys come from the other view of the same batch. Query path = encoder → projector (3-layer MLP, BN)
→ predictor (2-layer MLP, BN); key path = momentum copy of encoder → projector. For queries ``q (B, D)`` and
keys ``k (B, D)`` (ℓ2-normalised): ``ctr(q, k) = 2τ · CE(q·kᵀ/τ, labels=arange(B))`` (the paper's Algorithm 1
scales by 2τ), and the symmetric loss is ``ctr(q1, k2) + ctr(q2, k1)``.
Paper defaults: τ=0.2 (ViT) / 1.0 (ResNet), m=0.99 (ViT) cosine-increased to 1, projector 4096 hidden → 256.

Global batch under DDP: queries are gathered differentiably and keys without gradient from every rank (the
paper's ``concat_all_gather`` of keys), and the ``N × N`` loss is computed in full on each rank, so B is the global
batch and the loss (and its log) equals the single-process one.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat, gather_cat_nograd
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def moco_v3_contrastive(q: Tensor, k: Tensor, *, temperature: float) -> Tensor:
    """``2τ · CE(normalize(q)·normalize(k)ᵀ / τ, arange(N))`` in float32 (MoCo v3, Algorithm 1), over the
    ``N`` rows of every rank; ``k`` is a target (no gradient), as the momentum branch always is."""
    q = F.normalize(gather_cat(q).float(), dim=1)
    k = F.normalize(gather_cat_nograd(k).float(), dim=1)
    logits = q @ k.T / temperature
    targets = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, targets) * (2 * temperature)


class MoCoV3(Objective):
    def __init__(self, encoder: Encoder, *, temperature: float, projection_dim: int, hidden_dim: int,
                 predictor_hidden_dim: int, momentum: float, momentum_end: float) -> None:
        super().__init__(encoder)
        self.temperature = temperature
        self.ema = MomentumSchedule(base=momentum, final=momentum_end)
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim,
                                 num_layers=3, last_batch_norm=True)
        self.predictor = MLPHead(in_dim=projection_dim, hidden_dim=predictor_hidden_dim, out_dim=projection_dim,
                                 num_layers=2, last_batch_norm=True)
        self.momentum_encoder = make_teacher(encoder)
        self.momentum_projector = make_teacher(self.projector)

    @torch.no_grad()
    def _key(self, x: object) -> Tensor:
        return self.momentum_projector(self.momentum_encoder(x).pooled)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "MoCo v3")
        pair = views.global_views[:2]
        h1, h2 = run_views(lambda x: self.encoder(x).pooled, pair)
        q1, q2 = self.predictor(self.projector(torch.cat([h1, h2]))).chunk(2)
        k1, k2 = run_views(self._key, pair)
        loss = moco_v3_contrastive(q1, k2, temperature=self.temperature) + \
            moco_v3_contrastive(q2, k1, temperature=self.temperature)
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(),
                               logs={"contrastive": loss.detach(), "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.ema.update([(self.momentum_encoder, self.encoder), (self.momentum_projector, self.projector)],
                        step=step, total_steps=total_steps)


@OBJECTIVES.register("moco_v3", description="MoCo v3: momentum encoder, predictor, symmetric in-batch InfoNCE (Chen et al., 2021)")
def build_moco_v3(*, encoder: Encoder, temperature: float = 0.2, projection_dim: int = 256, hidden_dim: int = 4096,
                  predictor_hidden_dim: int = 4096, momentum: float = 0.99, momentum_end: float = 1.0) -> MoCoV3:
    """Paper (ViT) defaults: τ=0.2, m=0.99→1 cosine, 3-layer projector 4096→256, 2-layer predictor 4096→256."""
    return MoCoV3(encoder, temperature=temperature, projection_dim=projection_dim, hidden_dim=hidden_dim,
                  predictor_hidden_dim=predictor_hidden_dim, momentum=momentum, momentum_end=momentum_end)
