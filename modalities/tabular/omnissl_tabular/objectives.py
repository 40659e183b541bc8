"""Tabular SSL objectives: SCARF (contrastive, corrupted vs clean row) and VIME (mask + value reconstruction).

Both read ``{"numeric": (B, F_num), "categorical": (B, F_cat)}`` batches and the encoder's pooled ``(B, D)``.

Global batch under DDP: SCARF's InfoNCE gathers every rank's rows (negatives span the global batch, see
``omnissl.objectives.contrastive``); VIME's terms are per row, so each rank takes its share of the global means.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import local_share, world_size
from omnissl.objectives._global_stats import global_log, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.contrastive import info_nce
from omnissl.objectives.heads import MLPHead
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl_tabular.augment import bernoulli_mask, corrupt
from omnissl_tabular.data import TabularMarginals


def stack_rows(first: dict[str, Tensor], second: dict[str, Tensor]) -> dict[str, Tensor]:
    """Two tabular batches as one (one encoder call keeps BatchNorm statistics shared across views)."""
    return {key: torch.cat([first[key], second[key]]) for key in ("numeric", "categorical")}


class Scarf(Objective):
    """SCARF (Bahri et al., 2022): ``z = g(f(x))``, ``z̃ = g(f(x̃))`` with ``x̃`` the ``scarf_corruption`` view;
    loss = InfoNCE with anchor ``z_i``, positive ``z̃_i`` and the other ``z̃_k`` of the batch as negatives:
    ``-1/B Σ_i log exp(cos(z_i, z̃_i)/τ) / Σ_k exp(cos(z_i, z̃_k)/τ)``. Pooled features ``(B, D)``."""

    def __init__(self, encoder: Encoder, *, temperature: float, projection_dim: int, hidden_dim: int) -> None:
        super().__init__(encoder)
        self.temperature = temperature
        # SCARF's pre-training head g: a 2-layer ReLU MLP (no BatchNorm in the paper).
        self.head = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim, num_layers=2,
                            batch_norm=False)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        if views.original is None or not views.global_views:
            raise ValueError("SCARF needs the clean batch and one corrupted view (augment.global.count: 1 with "
                             "scarf_corruption)")
        clean, corrupted = views.original, views.global_views[0]
        batch = clean["numeric"].shape[0]
        h = self.encoder(stack_rows(clean, corrupted)).pooled
        z = self.head(h)
        loss = info_nce(z[:batch], z[batch:], temperature=self.temperature)
        return ObjectiveOutput(loss=loss, logs={"info_nce": loss.detach()}, embeddings=h[:batch].detach())


@OBJECTIVES.register("scarf", description="SCARF: InfoNCE between a row and its feature-corrupted copy (Bahri 2022)")
def build_scarf(*, encoder: Encoder, temperature: float = 1.0, projection_dim: int = 256,
                hidden_dim: int = 256) -> Scarf:
    """Paper defaults: τ = 1, a 2-layer 256-unit pre-training head."""
    return Scarf(encoder, temperature=temperature, projection_dim=projection_dim, hidden_dim=hidden_dim)


def _row_mean(values: Tensor) -> Tensor:
    """``values.mean(0)`` over the rows ``(B, ...)``; under DDP the rank's share of the mean over every rank's rows."""
    if world_size() == 1:
        return values.mean(0)
    return local_share(values.sum(0), values.shape[0])


class Vime(Objective):
    """VIME self-supervised (Yoon et al., 2020): mask ``m ~ Bern(p_m)`` per cell, corrupt with train-marginal draws
    ``x̃ = m·x̄ + (1−m)·x``, encode ``h = f(x̃)`` ``(B, D)``, then predict the mask ``m̂ = σ(s_m(h))`` ``(B, F)`` and the
    clean values ``x̂ = s_r(h)`` (numeric ``(B, F_num)``; logits ``(B, C_j)`` per categorical column ``j``).

    ``loss = l_m + α·l_r`` with ``l_m`` the mean binary cross-entropy over the ``F`` cells and ``l_r`` the mean over
    the ``F`` features of the numeric squared error / categorical cross-entropy. As in the authors' code the mask
    label is ``1[x̃ ≠ x]`` (a draw equal to the original value is not a detectable corruption).
    """

    def __init__(self, encoder: Encoder, *, mask_rate: float, alpha: float, num_numeric: int,
                 categorical_cardinalities: Sequence[int], marginals: TabularMarginals) -> None:
        super().__init__(encoder)
        self.mask_rate, self.alpha, self.marginals = mask_rate, alpha, marginals
        self.num_numeric, self.cardinalities = num_numeric, tuple(categorical_cardinalities)
        features = num_numeric + len(self.cardinalities)
        self.mask_head = nn.Linear(encoder.embed_dim, features)
        self.numeric_head = nn.Linear(encoder.embed_dim, num_numeric)
        self.categorical_heads = nn.ModuleList([nn.Linear(encoder.embed_dim, c) for c in self.cardinalities])

    def losses(self, x: dict[str, Tensor], corrupted: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Mask BCE, reconstruction loss and the pooled features for a given clean / corrupted pair."""
        changed = torch.cat([corrupted["numeric"] != x["numeric"], corrupted["categorical"] != x["categorical"]], 1)
        h = self.encoder(corrupted).pooled
        if world_size() == 1:  # verbatim single-process form (bit-for-bit)
            mask_loss = F.binary_cross_entropy_with_logits(self.mask_head(h).float(), changed.float())
        else:
            mask_loss = token_mean(F.binary_cross_entropy_with_logits(self.mask_head(h).float(), changed.float(),
                                                                         reduction="none"))
        per_feature = []
        if self.num_numeric:
            per_feature.append(_row_mean(F.mse_loss(self.numeric_head(h).float(), x["numeric"].float(),
                                                    reduction="none")))
        for j, head in enumerate(self.categorical_heads):
            if world_size() == 1:
                per_feature.append(F.cross_entropy(head(h).float(), x["categorical"][:, j]).reshape(1))
            else:
                per_feature.append(_row_mean(F.cross_entropy(head(h).float(), x["categorical"][:, j],
                                                             reduction="none")).reshape(1))
        reconstruction = torch.cat(per_feature).mean()
        return mask_loss, reconstruction, h

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0] if views.global_views else views.original
        batch, device = x["numeric"].shape[0], x["numeric"].device
        mask = bernoulli_mask(batch, self.num_numeric + len(self.cardinalities), self.mask_rate, device)
        corrupted = corrupt(x, mask, self.marginals.sample(batch, device))
        mask_loss, reconstruction, h = self.losses(x, corrupted)
        loss = mask_loss + self.alpha * reconstruction
        return ObjectiveOutput(loss=loss, logs={"mask_bce": global_log(mask_loss),
                                                   "reconstruction": global_log(reconstruction)},
                               embeddings=h.detach())


@OBJECTIVES.register("vime", description="VIME: reconstruct masked features + predict the mask (Yoon et al., 2020)")
def build_vime(*, encoder: Encoder, mask_rate: float = 0.3, alpha: float = 2.0, num_numeric: int = 6,
               categorical_cardinalities: tuple[int, ...] = (10, 18, 9, 16, 8, 7, 4, 43),
               marginals: TabularMarginals | None = None) -> Vime:
    """Paper defaults p_m = 0.3, α = 2.0; the shape and marginals come from the tabular dataset's spec."""
    if marginals is None:
        raise ValueError("vime draws corruptions from the train marginals: use a tabular dataset")
    if not 0.0 < mask_rate < 1.0:
        raise ValueError(f"mask_rate must be in (0, 1), got {mask_rate}")
    return Vime(encoder, mask_rate=mask_rate, alpha=alpha, num_numeric=num_numeric,
                categorical_cardinalities=categorical_cardinalities, marginals=marginals)
