"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual Representations")."""

from __future__ import annotations

import torch

from omnissl.objectives.base import Objective
from omnissl.objectives.contrastive import nt_xent
from omnissl.objectives.heads import MLPHead
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


class SimCLR(Objective):
    """Two views → encoder → projection MLP → NT-Xent. Pooled ``(B, D)`` outputs; any modality."""

    def __init__(self, encoder: Encoder, *, temperature: float, projection_dim: int, hidden_dim: int,
                 projection_layers: int) -> None:
        super().__init__(encoder)
        self.temperature = temperature
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim,
                                 num_layers=projection_layers)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        if len(views.global_views) < 2:
            raise ValueError("SimCLR needs 2 global views; set augment.global.count: 2")
        first, second = views.global_views[:2]
        # One encoder call on both views keeps BatchNorm statistics shared, as in the paper.
        batch = first.shape[0] if isinstance(first, torch.Tensor) else None
        if batch is not None and isinstance(second, torch.Tensor):
            pooled = self.encoder(torch.cat([first, second])).pooled
            h1, h2 = pooled[:batch], pooled[batch:]
        else:
            h1, h2 = self.encoder(first).pooled, self.encoder(second).pooled
        z = self.projector(torch.cat([h1, h2]))
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, temperature=self.temperature)
        return ObjectiveOutput(loss=loss, logs={"nt_xent": loss.detach()}, embeddings=h1.detach())


@OBJECTIVES.register("simclr", description="SimCLR: NT-Xent between two augmented views (Chen et al., 2020)")
def build_simclr(*, encoder: Encoder, temperature: float = 0.5, projection_dim: int = 128,
                 hidden_dim: int = 2048, projection_layers: int = 2) -> SimCLR:
    """Paper defaults: τ=0.5 (0.1–0.5 in the paper's sweeps), 2-layer MLP projector to 128-d."""
    return SimCLR(encoder, temperature=temperature, projection_dim=projection_dim, hidden_dim=hidden_dim,
                  projection_layers=projection_layers)
