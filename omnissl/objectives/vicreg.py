"""VICReg (Bardes, Ponce & LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization").

For expander outputs ``Z, Z' (n, d)``:
- invariance ``s(Z, Z') = (1/n) Σ_i ‖z_i − z'_i‖² / d`` (mean squared error, as in the official code);
- variance ``v(Z) = (1/d) Σ_j max(0, γ − sqrt(Var(z^j) + ε))`` with γ=1, ε=1e-4;
- covariance ``c(Z) = (1/d) Σ_{i≠j} C(Z)_ij²`` with ``C(Z) = (1/(n−1)) Σ (z − z̄)(z − z̄)ᵀ``.
``L = λ·s + μ·[v(Z) + v(Z')] + ν·[c(Z) + c(Z')]`` (Eq. 6), paper defaults λ = μ = 25, ν = 1, expander 8192×3.
(The official code averages the two variance terms, ``μ·[v(Z)+v(Z')]/2``; the paper's Eq. 6 sums them — we
follow the paper and document it.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.objectives._global_stats import (
    batch_count,
    batch_matmul_sum,
    batch_mean,
    batch_var,
    distributed,
    global_log,
    sample_mean,
)
from omnissl.objectives.base import Objective
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def invariance_term(z1: Tensor, z2: Tensor) -> Tensor:
    """Per-sample: under DDP each rank's share of the global mean (no collective on the features)."""
    if not distributed():
        return F.mse_loss(z1.float(), z2.float())
    return sample_mean((z1.float() - z2.float()).pow(2).mean(dim=1))


def variance_term(z: Tensor, *, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Uses the global batch's (unbiased) variance under DDP; the same value on every rank."""
    std = torch.sqrt(batch_var(z.float(), unbiased=True) + eps)
    return F.relu(gamma - std).mean()


def covariance_term(z: Tensor) -> Tensor:
    """Uses the global batch's covariance under DDP (all-reduced sum of centred outer products)."""
    z = z.float()
    n, d = z.shape
    centred = z - batch_mean(z)
    if distributed():
        cov = batch_matmul_sum(centred, centred) / (batch_count(z) - 1)
    else:
        cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(z1: Tensor, z2: Tensor, *, sim_coeff: float, std_coeff: float,
                cov_coeff: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Returns the total loss and its three (unweighted) terms."""
    terms = {"invariance": invariance_term(z1, z2),
             "variance": variance_term(z1) + variance_term(z2),
             "covariance": covariance_term(z1) + covariance_term(z2)}
    loss = sim_coeff * terms["invariance"] + std_coeff * terms["variance"] + cov_coeff * terms["covariance"]
    return loss, terms


class VICReg(Objective):
    def __init__(self, encoder: Encoder, *, expander_dim: int, expander_layers: int, sim_coeff: float,
                 std_coeff: float, cov_coeff: float) -> None:
        super().__init__(encoder)
        self.coeffs = dict(sim_coeff=sim_coeff, std_coeff=std_coeff, cov_coeff=cov_coeff)
        self.expander = MLPHead(in_dim=encoder.embed_dim, hidden_dim=expander_dim, out_dim=expander_dim,
                                num_layers=expander_layers)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "VICReg")
        h1, h2 = run_views(lambda x: self.encoder(x).pooled, views.global_views[:2])
        loss, terms = vicreg_loss(self.expander(h1), self.expander(h2), **self.coeffs)
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(), logs={k: global_log(v) for k, v in terms.items()})


@OBJECTIVES.register("vicreg", description="VICReg: variance, invariance and covariance terms (Bardes et al., 2022)")
def build_vicreg(*, encoder: Encoder, expander_dim: int = 8192, expander_layers: int = 3, sim_coeff: float = 25.0,
                 std_coeff: float = 25.0, cov_coeff: float = 1.0) -> VICReg:
    """Paper defaults: 3-layer expander 8192, λ = μ = 25, ν = 1."""
    return VICReg(encoder, expander_dim=expander_dim, expander_layers=expander_layers, sim_coeff=sim_coeff,
                  std_coeff=std_coeff, cov_coeff=cov_coeff)
