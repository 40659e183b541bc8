"""SimSiam (Chen & He, 2021, "Exploring Simple Siamese Representation Learning").

One encoder ``f`` (backbone + 3-layer projector with BN, last BN) and a bottleneck predictor ``h`` (2-layer).
With ``z = f(x)`` and ``p = h(z)`` per view, ``D(p, z) = −cos(p, stopgrad(z))`` and
``L = D(p1, z2)/2 + D(p2, z1)/2`` (Eq. 1–2); the stop-gradient is what prevents collapse (§4.1).
Paper defaults: projector 2048-d, predictor 2048 → 512 → 2048.

Global batch under DDP: ``D`` is per sample, so each rank's share of the global mean is exact; the projector's
BatchNorm couples samples and is synchronised by ``train.sync_batchnorm``. Logs are the global values.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.objectives._global_stats import global_log, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """``D(p, z) = −mean_b cos(p_b, stopgrad(z_b))`` for ``(B, D)`` inputs, in float32 (under DDP the rank's
    share of the mean over every rank's rows)."""
    return -token_mean(F.cosine_similarity(p.float(), z.detach().float(), dim=1))


class SimSiam(Objective):
    def __init__(self, encoder: Encoder, *, projection_dim: int, predictor_hidden_dim: int) -> None:
        super().__init__(encoder)
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=projection_dim, out_dim=projection_dim,
                                 num_layers=3, last_batch_norm=True)
        self.predictor = MLPHead(in_dim=projection_dim, hidden_dim=predictor_hidden_dim, out_dim=projection_dim)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "SimSiam")
        h1, h2 = run_views(lambda x: self.encoder(x).pooled, views.global_views[:2])
        z1, z2 = self.projector(torch.cat([h1, h2])).chunk(2)
        p1, p2 = self.predictor(torch.cat([z1, z2])).chunk(2)
        loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(), logs={"neg_cosine": global_log(loss)})


@OBJECTIVES.register("simsiam", description="SimSiam: predictor + stop-gradient, no negatives, no EMA (Chen & He, 2021)")
def build_simsiam(*, encoder: Encoder, projection_dim: int = 2048, predictor_hidden_dim: int = 512) -> SimSiam:
    """Paper defaults: 3-layer projector 2048-d (BN on the output), predictor bottleneck 512."""
    return SimSiam(encoder, projection_dim=projection_dim, predictor_hidden_dim=predictor_hidden_dim)
