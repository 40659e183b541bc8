"""Barlow Twins (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction").

Projections ``z1, z2 (B, D)`` are standardised along the batch (BatchNorm without affine, biased variance, as in
the official code), the cross-correlation ``C = z1ᵀ z2 / B`` ``(D, D)`` is pushed to the identity:
``L = Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²`` (Eq. 1–2). Paper defaults: λ = 0.0051, projector 3 layers 8192-d.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnissl.objectives._global_stats import (
    batch_count,
    batch_matmul_sum,
    batch_mean,
    batch_var,
    distributed,
    global_log,
)
from omnissl.objectives.base import Objective
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-dimension ``(z − mean) / sqrt(var + eps)`` over the batch (biased variance, like BatchNorm); under DDP
    the moments are the global batch's, as the official code's all-reduced BatchNorm gives them."""
    z = z.float()
    return (z - batch_mean(z)) / torch.sqrt(batch_var(z, unbiased=False) + eps)


def cross_correlation(z1: Tensor, z2: Tensor) -> Tensor:
    """``C (D, D)`` between batch-standardised ``z1, z2 (B, D)``; ``C_ij ∈ [−1, 1]``. Under DDP ``C`` is the global
    batch's (all-reduced sum of per-row products), identical on every rank, and so is the loss built from it."""
    if not distributed():
        return standardize(z1).T @ standardize(z2) / z1.shape[0]
    return batch_matmul_sum(standardize(z1), standardize(z2)) / batch_count(z1)


def barlow_twins_loss(z1: Tensor, z2: Tensor, *, lambda_offdiag: float) -> tuple[Tensor, Tensor, Tensor]:
    """Returns ``(loss, on_diagonal, off_diagonal)`` with ``loss = on + λ·off``."""
    c = cross_correlation(z1, z2)
    diagonal = torch.diagonal(c)
    on = (1 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return on + lambda_offdiag * off, on, off


class BarlowTwins(Objective):
    def __init__(self, encoder: Encoder, *, projection_dim: int, hidden_dim: int, lambda_offdiag: float) -> None:
        super().__init__(encoder)
        self.lambda_offdiag = lambda_offdiag
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim,
                                 num_layers=3)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "Barlow Twins")
        h1, h2 = run_views(lambda x: self.encoder(x).pooled, views.global_views[:2])
        # Separate projector calls: each view's BN statistics are its own, as in the paper.
        loss, on, off = barlow_twins_loss(self.projector(h1), self.projector(h2), lambda_offdiag=self.lambda_offdiag)
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(),
                               logs={"on_diagonal": global_log(on), "off_diagonal": global_log(off)})


@OBJECTIVES.register("barlow_twins", description="Barlow Twins: cross-correlation of two views → identity (Zbontar et al., 2021)")
def build_barlow_twins(*, encoder: Encoder, projection_dim: int = 8192, hidden_dim: int = 8192,
                       lambda_offdiag: float = 0.0051) -> BarlowTwins:
    """Paper defaults: 3-layer projector 8192-8192-8192, λ = 0.0051."""
    return BarlowTwins(encoder, projection_dim=projection_dim, hidden_dim=hidden_dim, lambda_offdiag=lambda_offdiag)
