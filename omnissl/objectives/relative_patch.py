"""Relative patch location (Doersch et al., 2015, "Unsupervised Visual Representation Learning by Context
Prediction").

The view ``x (B, C, H, W)`` is cut into a 3 × 3 grid of cells; per image one neighbour ``k ~ U{0..7}`` of the
centre cell is drawn (cells in row-major order without the centre). Both tiles — ``cell − gap`` pixels square,
each shifted by a random jitter in [0, gap] (the paper's gap + jitter, §3, against trivial edge matching) — go
through the encoder (a siamese pair, shared weights): pooled ``(B, D)`` each; a classifier on their concatenation
``(B, 2D)`` predicts ``k``: 8-way cross-entropy. The paper's chromatic-aberration counter-measures (colour
dropping/projection) are left to the augmentations (e.g. ``random_grayscale``).
"""

from __future__ import annotations

import torch

from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log
from omnissl.objectives._pretext import check_image, classification_loss, classifier, draw_jitter, grid_tiles
from omnissl.objectives.base import Objective
from omnissl.objectives.multiview import need_views

NEIGHBOURS = (0, 1, 2, 3, 5, 6, 7, 8)  # the 8 cells around the centre (4) of a row-major 3×3 grid


class RelativePatchLocation(Objective):
    def __init__(self, encoder: Encoder, *, gap: int, hidden_dim: int) -> None:
        super().__init__(encoder)
        self.gap = gap
        self.head = classifier(in_dim=2 * encoder.embed_dim, hidden_dim=hidden_dim, classes=8)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "relative_patch")
        x = views.global_views[0]
        check_image(x, "relative_patch")
        batch, device = x.shape[0], x.device
        label = torch.randint(0, 8, (batch,), device=device)
        tiles, _ = grid_tiles(x, grid=3, gap=self.gap, jitter=draw_jitter(batch, 9, gap=self.gap, device=device))
        rows = torch.arange(batch, device=device)
        neighbour = tiles[rows, torch.tensor(NEIGHBOURS, device=device)[label]]
        pooled = self.encoder(torch.cat([tiles[:, 4], neighbour])).pooled
        centre, other = pooled.split(batch)
        loss, accuracy = classification_loss(self.head(torch.cat([centre, other], dim=1)), label)
        return ObjectiveOutput(loss=loss, embeddings=centre.detach(),
                               logs={"location_ce": global_log(loss), "location_acc": global_log(accuracy)})


@OBJECTIVES.register("relative_patch", description="Context prediction: which of 8 neighbours a patch is (Doersch et al., 2015)")
def build_relative_patch(*, encoder: Encoder, gap: int = 2, hidden_dim: int = 512) -> RelativePatchLocation:
    """Paper: 96-px patches with a 48-px gap and ±7 px jitter on ImageNet; scaled here to small images
    (a 32-px image gives 8-px tiles with ``gap`` 2)."""
    if gap < 0:
        raise ValueError(f"gap must be ≥ 0, got {gap}")
    return RelativePatchLocation(encoder, gap=gap, hidden_dim=hidden_dim)
