"""Collapse monitor: is the representation spreading out, or falling onto a point or a low-rank subspace?

Two numbers on a batch of embeddings ``(B, D)``:
- ``embedding_std``: mean over dimensions of the std of L2-normalised embeddings. A uniform spread on the sphere
  gives about ``1/sqrt(D)``; complete collapse gives 0 (Chen & He, 2021, SimSiam §4.1).
- ``effective_rank``: ``exp(entropy(σ / Σσ))`` of the centred embeddings' singular values
  (Roy & Vetterli, 2007; used for SSL by Garrido et al., 2023, RankMe). 1 = everything on one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F


@torch.no_grad()
def collapse_stats(embeddings: Tensor) -> dict[str, float]:
    z = embeddings.detach().float()
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"collapse_stats needs (B≥2, D) embeddings, got {tuple(z.shape)}")
    normalised = F.normalize(z, dim=1)
    std = normalised.std(dim=0).mean().item()
    singular = torch.linalg.svdvals(z - z.mean(dim=0, keepdim=True))
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum().item()
    return {"embedding_std": std, "effective_rank": math.exp(entropy),
            "embedding_std_ideal": 1.0 / math.sqrt(z.shape[1])}


@dataclass
class CollapseMonitor:
    """Flags collapse when std falls below ``std_fraction`` of the ideal or effective rank below ``min_rank``."""

    std_fraction: float = 0.1
    min_rank: float = 1.5

    def is_collapsed(self, stats: dict[str, float]) -> bool:
        return (stats["embedding_std"] < self.std_fraction * stats["embedding_std_ideal"]
                or stats["effective_rank"] < self.min_rank)

    def describe(self, stats: dict[str, float]) -> str:
        return (f"embedding std {stats['embedding_std']:.4f} (ideal {stats['embedding_std_ideal']:.4f}), "
                f"effective rank {stats['effective_rank']:.2f}")
