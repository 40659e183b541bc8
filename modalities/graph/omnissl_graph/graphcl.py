"""GraphCL (You et al., NeurIPS 2020, "Graph Contrastive Learning with Augmentations").

Two augmented views of each graph → GIN → graph readout → projection head → contrastive loss between the views.
Global batch under DDP: both losses gather every rank's graphs (``gather_cat``) and are computed in full on each
rank, so the negatives of a graph are all other graphs of the global batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.objectives.base import Objective
from omnissl.objectives.contrastive import nt_xent
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def graphcl_loss(z1: Tensor, z2: Tensor, *, temperature: float) -> Tensor:
    """GraphCL's eq. (3): for graph n, ``-log exp(s(z1_n, z2_n)/τ) / Σ_{n'≠n} exp(s(z1_n, z2_n')/τ)``, mean over n.

    z1, z2: ``(B, D)``; s = cosine similarity. Unlike NT-Xent the positive is *not* in the denominator and only
    cross-view pairs are negatives, anchored on view 1 (as in the paper and its reference code). Under DDP the
    rows of every rank are gathered first, so n runs over the global batch.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"graphcl_loss needs two (B≥2, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    z1, z2 = gather_cat(z1), gather_cat(z2)
    if z1.shape[0] < 2:  # the global batch: one graph per rank is enough under DDP
        raise ValueError(f"graphcl_loss needs two (B≥2, D) tensors of one shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
    logits = F.normalize(z1.float(), dim=1) @ F.normalize(z2.float(), dim=1).T / temperature
    positive = logits.diagonal()
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    negatives = torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1)
    return (negatives - positive).mean()


class GraphCL(Objective):
    """Views: two ``Batch`` es of the same G graphs. Pooled ``(G, D)`` → head ``Linear→ReLU→Linear`` (D → D)."""

    def __init__(self, encoder: Encoder, *, temperature: float, loss: Literal["graphcl", "nt_xent"]) -> None:
        super().__init__(encoder)
        dim = encoder.embed_dim
        self.temperature, self.loss_name = temperature, loss
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        if len(views.global_views) < 2:
            raise ValueError("GraphCL needs 2 global views; set augment.global.count: 2")
        first, second = views.global_views[:2]
        h1, h2 = self.encoder(first).pooled, self.encoder(second).pooled
        z1, z2 = self.projector(h1), self.projector(h2)
        fn = graphcl_loss if self.loss_name == "graphcl" else nt_xent
        loss = fn(z1, z2, temperature=self.temperature)
        return ObjectiveOutput(loss=loss, logs={self.loss_name: loss.detach()}, embeddings=h1.detach())


@OBJECTIVES.register("graphcl", modality="graph", description="GraphCL: contrast two augmented views of each graph (You et al., 2020)")
def build_graphcl(*, encoder: Encoder, temperature: float = 0.2,
                  loss: Literal["graphcl", "nt_xent"] = "graphcl") -> GraphCL:
    """Paper: τ = 0.2, projection head of two linear layers; ``loss: nt_xent`` uses the core's SimCLR loss."""
    return GraphCL(encoder, temperature=temperature, loss=loss)
