"""GRACE (Zhu et al., 2020, "Deep Graph Contrastive Representation Learning"): node-level contrast of two views.

Each view drops edges and masks feature columns (``graph_edge_drop``, ``graph_feature_mask``); the same node in
the two views is the positive pair; every other node of *both* views is a negative.
Global batch under DDP: the projected nodes of every rank are gathered (``gather_cat``) and the loss is computed in
full on each rank, so the negatives are every node of the global batch. ``nodes.unique()`` is per rank: a node two
ranks both hold (only the distributed sampler's padding of the last batch does that) counts as its own negative.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import IncompatibleError
from omnissl.objectives.base import Objective
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def grace_loss(u: Tensor, v: Tensor, *, temperature: float) -> Tensor:
    """GRACE's eq. (1)–(2): ``ℓ(u_i, v_i) = -log e^{θ(u_i,v_i)/τ} / (e^{θ(u_i,v_i)/τ} + Σ_{k≠i} e^{θ(u_i,v_k)/τ}
    + Σ_{k≠i} e^{θ(u_i,u_k)/τ})`` with θ = cosine similarity; ``J = mean_i ½(ℓ(u_i,v_i) + ℓ(v_i,u_i))``.

    u, v: ``(N, D)`` projected embeddings of the same N nodes in the two views (this rank's; gathered over ranks
    first). Computed in log space (float32).
    """
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"grace_loss needs two (N, D) tensors of one shape, got {tuple(u.shape)}, {tuple(v.shape)}")
    u, v = F.normalize(gather_cat(u).float(), dim=1), F.normalize(gather_cat(v).float(), dim=1)
    eye = torch.eye(u.shape[0], dtype=torch.bool, device=u.device)

    def one_side(a: Tensor, b: Tensor) -> Tensor:
        between = a @ b.T / temperature                                  # inter-view, positive on the diagonal
        within = (a @ a.T / temperature).masked_fill(eye, float("-inf"))  # intra-view negatives (k ≠ i)
        return torch.logsumexp(torch.cat([between, within], dim=1), dim=1) - between.diagonal()

    return 0.5 * (one_side(u, v) + one_side(v, u)).mean()


class GRACE(Objective):
    """Views: two node-level inputs (or two ``Batch`` es with the same nodes). Encoder node embeddings
    ``(N, D)`` → projection ``Linear → ELU → Linear`` → :func:`grace_loss` on the batch's nodes."""

    def __init__(self, encoder: Encoder, *, temperature: float, projection_dim: int) -> None:
        super().__init__(encoder)
        if not hasattr(encoder, "node_embeddings"):
            raise IncompatibleError(f"GRACE needs a graph encoder with node_embeddings, got {type(encoder).__name__}")
        dim = encoder.embed_dim
        self.temperature = temperature
        self.projector = nn.Sequential(nn.Linear(dim, projection_dim), nn.ELU(), nn.Linear(projection_dim, dim))

    def _rows(self, view: Any) -> Tensor:
        if isinstance(view, dict):
            return self.encoder(view).pooled  # the requested nodes' rows
        return self.encoder.node_embeddings(view)  # type: ignore[operator]

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        if len(views.global_views) < 2:
            raise ValueError("GRACE needs 2 global views; set augment.global.count: 2")
        first, second = views.global_views[:2]
        if isinstance(first, dict):  # a batch can straddle two epochs: a repeated node must not be its own negative
            nodes = first["nodes"].unique()
            first, second = {**first, "nodes": nodes}, {**second, "nodes": nodes}
        h1, h2 = self._rows(first), self._rows(second)
        if h1.shape != h2.shape:
            raise ValueError(f"GRACE views must keep every node (use edge/feature ops, not node dropping): "
                             f"got {tuple(h1.shape)} and {tuple(h2.shape)}")
        loss = grace_loss(self.projector(h1), self.projector(h2), temperature=self.temperature)
        return ObjectiveOutput(loss=loss, logs={"grace": loss.detach()}, embeddings=h1.detach())


@OBJECTIVES.register("grace", modality="graph", description="GRACE: node-level contrast with intra- and inter-view negatives (Zhu et al., 2020)")
def build_grace(*, encoder: Encoder, temperature: float = 0.4, projection_dim: int = 128) -> GRACE:
    """Cora settings of the paper: τ = 0.4, 128-d projection."""
    return GRACE(encoder, temperature=temperature, projection_dim=projection_dim)
