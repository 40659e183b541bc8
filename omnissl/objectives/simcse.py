"""Unsupervised SimCSE (Gao et al., 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings").

The same input goes through the encoder twice in training mode; the two dropout masks are the only augmentation
(the recipe may add token-level ops, which then make the two views differ too). With ``h_i, h_i⁺`` the pooled
``(B, D)`` outputs (after the training-only MLP), the loss is the paper's in-batch InfoNCE
``-log e^{sim(h_i, h_i⁺)/τ} / Σ_j e^{sim(h_i, h_j⁺)/τ}`` with cosine similarity and τ = 0.05, or optionally the
symmetric NT-Xent of SimCLR over all 2B embeddings. Both come from :mod:`omnissl.objectives.contrastive`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from omnissl.objectives.base import Objective
from omnissl.objectives.contrastive import info_nce, nt_xent
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def _stackable(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape[1:] == b.shape[1:]
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(isinstance(a[k], torch.Tensor) and isinstance(b[k], torch.Tensor)
                   and a[k].shape[1:] == b[k].shape[1:] for k in a)
    return False


def _stack(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: torch.cat([a[k], b[k]]) for k in a}
    return torch.cat([a, b])


class SimCSE(Objective):
    """Two dropout views → pooled ``(B, D)`` → MLP (training only, as in the paper) → contrastive loss."""

    def __init__(self, encoder: Encoder, *, temperature: float, loss: Literal["info_nce", "nt_xent"],
                 mlp: bool) -> None:
        super().__init__(encoder)
        self.temperature, self.loss_name = temperature, loss
        dim = encoder.embed_dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.Tanh()) if mlp else nn.Identity()

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        if len(views.global_views) >= 2:
            first, second = views.global_views[:2]
        else:
            first = second = views.original if views.original is not None else views.global_views[0]
        if _stackable(first, second):
            # One batched call: every row still draws its own dropout mask, so the two halves differ.
            pooled = self.encoder(_stack(first, second)).pooled
            h1, h2 = pooled.chunk(2)
        else:
            h1, h2 = self.encoder(first).pooled, self.encoder(second).pooled
        z1, z2 = self.mlp(h1), self.mlp(h2)
        if self.loss_name == "info_nce":
            loss = info_nce(z1, z2, temperature=self.temperature)
        else:
            loss = nt_xent(z1, z2, temperature=self.temperature)
        return ObjectiveOutput(loss=loss, logs={"contrastive_loss": loss.detach()}, embeddings=h1.detach())


@OBJECTIVES.register("simcse", description="unsupervised SimCSE: dropout views + in-batch InfoNCE (Gao et al., 2021)")
def build_simcse(*, encoder: Encoder, temperature: float = 0.05, loss: Literal["info_nce", "nt_xent"] = "info_nce",
                 mlp: bool = True) -> SimCSE:
    """Paper defaults: τ = 0.05, an MLP over the pooled output during training, evaluated without it. Needs an
    encoder with dropout (e.g. ``bert`` with ``dropout: 0.1``); any modality works."""
    return SimCSE(encoder, temperature=temperature, loss=loss, mlp=mlp)
