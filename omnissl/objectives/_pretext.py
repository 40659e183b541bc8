"""Pieces shared by the classic image pretext tasks (rotation, relative patch location, jigsaw, colorization):
a classifier over an encoder's pooled output, its global-batch cross-entropy, and grid tiles with random jitter.

Images are ``(B, C, H, W)`` in whatever dtype the encoder takes (uint8 pixels: normalisation lives in the encoder),
so a pretext task works over any image encoder. All randomness is drawn from torch's RNG on the batch's device with
the batch as dim 0, so runs resume exactly and a DDP rank draws the rows of its own samples.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import DataError
from omnissl.objectives._global_stats import sample_mean


def classifier(*, in_dim: int, hidden_dim: int, classes: int) -> nn.Module:
    """``Linear → BN → ReLU → Linear`` (``hidden_dim > 0``) or one ``Linear``: ``(B, in_dim)`` → ``(B, classes)``."""
    if hidden_dim <= 0:
        return nn.Linear(in_dim, classes)
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, classes))


def classification_loss(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cross-entropy over the rows of ``logits (M, K)`` (a rank's share of the global mean under DDP) and the
    accuracy as a share likewise (for logs)."""
    loss = sample_mean(F.cross_entropy(logits.float(), targets, reduction="none"))
    accuracy = sample_mean((logits.detach().argmax(dim=-1) == targets).float())
    return loss, accuracy


def check_image(x: Tensor, method: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DataError(f"{method}: expects an image batch (B, C, H, W), got {shape}")


def grid_tiles(x: Tensor, *, grid: int, gap: int, jitter: Tensor) -> tuple[Tensor, int]:
    """The ``grid × grid`` tiles of each image, each ``cell − gap`` pixels square, shifted inside its cell by
    ``jitter (B, grid·grid, 2)`` ∈ [0, gap] (Doersch et al., 2015 §3: gaps and jitter stop the network from
    matching edges). Returns ``(B, grid·grid, C, t, t)`` in row-major cell order, and ``t``."""
    batch, _, height, width = x.shape
    cell = min(height, width) // grid
    tile = cell - gap
    if tile < 1:
        raise DataError(f"image {height}×{width} is too small for a {grid}×{grid} grid with gap {gap}")
    cells = torch.arange(grid * grid, device=x.device)
    top = (cells // grid) * cell + jitter[..., 0]  # (B, G)
    left = (cells % grid) * cell + jitter[..., 1]
    offsets = torch.arange(tile, device=x.device)
    rows = (top.unsqueeze(-1) + offsets).unsqueeze(-1)  # (B, G, t, 1)
    cols = (left.unsqueeze(-1) + offsets).unsqueeze(-2)  # (B, G, 1, t)
    b = torch.arange(batch, device=x.device).view(batch, 1, 1, 1)
    tiles = x.permute(0, 2, 3, 1)[b, rows, cols]  # (B, G, t, t, C)
    return tiles.permute(0, 1, 4, 2, 3).contiguous(), tile


def draw_jitter(batch: int, tiles: int, *, gap: int, device: torch.device) -> Tensor:
    """``(B, tiles, 2)`` integer offsets in [0, gap] (torch RNG, batch-first)."""
    return torch.randint(0, gap + 1, (batch, tiles, 2), device=device)
