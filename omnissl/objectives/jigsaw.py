"""Jigsaw puzzles (Noroozi & Favaro, 2016, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles").

The view ``x (B, C, H, W)`` is cut into 3 × 3 tiles (``cell − gap`` pixels, random jitter in [0, gap] per tile,
§3.2's gaps against edge shortcuts); per image one permutation ``p ~ U{0..P−1}`` of a fixed set is drawn and the
tiles are shuffled by it. Each tile goes through the encoder alone (the paper's context-free network, shared
weights): ``(B, 9, D)``; a classifier on the 9 concatenated pooled vectors ``(B, 9D)`` predicts the permutation's
index: P-way cross-entropy.

The permutation set (a buffer, so checkpoints carry it) is chosen as in the paper's Algorithm 1: from all 9!
permutations, start from a random one and repeatedly add the permutation with the largest mean Hamming distance to
those already chosen (never one already chosen), drawn from a ``torch.Generator`` seeded with ``permutation_seed``
so the set is the same on every run and rank. Paper: P = 1000 (Table 3: larger average distance → better
transfer), 64-px tiles from 75-px cells.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log
from omnissl.objectives._pretext import check_image, classification_loss, classifier, draw_jitter, grid_tiles
from omnissl.objectives.base import Objective
from omnissl.objectives.multiview import need_views


def maximal_hamming_permutations(count: int, *, tiles: int = 9, seed: int = 0) -> Tensor:
    """``(count, tiles)`` long: Algorithm 1 of the paper ("maximal" variant), seeded."""
    every = torch.tensor(list(itertools.permutations(range(tiles))), dtype=torch.uint8)
    if not 1 <= count <= every.shape[0]:
        raise ValueError(f"num_permutations must be in 1..{every.shape[0]}, got {count}")
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(0, every.shape[0], (1,), generator=generator))]
    columns = every.T.contiguous()  # (tiles, 9!): one compare per tile position is faster than a row-wise sum
    total = torch.zeros(every.shape[0], dtype=torch.int32)  # Σ Hamming distance to the chosen ones
    for _ in range(count - 1):
        total[chosen[-1]] = -(tiles + 1) * count  # stays below every unchosen one: never picked twice
        for position in range(tiles):
            total += columns[position] != columns[position, chosen[-1]]
        chosen.append(int(total.argmax()))
    return every[chosen].long()


class Jigsaw(Objective):
    def __init__(self, encoder: Encoder, *, num_permutations: int, permutation_seed: int, gap: int,
                 hidden_dim: int) -> None:
        super().__init__(encoder)
        self.gap = gap
        self.register_buffer("permutations", maximal_hamming_permutations(num_permutations, seed=permutation_seed))
        self.head = classifier(in_dim=9 * encoder.embed_dim, hidden_dim=hidden_dim, classes=num_permutations)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "jigsaw")
        x = views.global_views[0]
        check_image(x, "jigsaw")
        batch, device = x.shape[0], x.device
        label = torch.randint(0, self.permutations.shape[0], (batch,), device=device)
        tiles, _ = grid_tiles(x, grid=3, gap=self.gap, jitter=draw_jitter(batch, 9, gap=self.gap, device=device))
        order = self.permutations[label]  # (B, 9): slot s shows tile order[s]
        shuffled = tiles[torch.arange(batch, device=device).unsqueeze(1), order]
        pooled = self.encoder(shuffled.flatten(0, 1)).pooled.view(batch, 9, -1)
        loss, accuracy = classification_loss(self.head(pooled.flatten(1)), label)
        return ObjectiveOutput(loss=loss, embeddings=pooled.mean(dim=1).detach(),
                               logs={"jigsaw_ce": global_log(loss), "jigsaw_acc": global_log(accuracy)})


@OBJECTIVES.register("jigsaw", description="Jigsaw: which permutation shuffled the 3×3 tiles (Noroozi & Favaro, 2016)")
def build_jigsaw(*, encoder: Encoder, num_permutations: int = 1000, permutation_seed: int = 0, gap: int = 1,
                 hidden_dim: int = 1024) -> Jigsaw:
    """Paper defaults: 1000 permutations by maximal Hamming distance; tiles ``cell − gap`` pixels (32-px images:
    10-px cells, 9-px tiles with ``gap`` 1)."""
    if gap < 0:
        raise ValueError(f"gap must be ≥ 0, got {gap}")
    return Jigsaw(encoder, num_permutations=num_permutations, permutation_seed=permutation_seed, gap=gap,
                  hidden_dim=hidden_dim)
