"""Small reusable heads shared by the objectives: projection MLPs, predictors and prototypes."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MLPHead(nn.Module):
    """``Linear → [BN] → ReLU`` × (layers-1) then ``Linear [→ BN]``: SimCLR/BYOL/VICReg projectors and predictors.

    x: ``(B, in_dim)`` → ``(B, out_dim)``.
    """

    def __init__(self, *, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 batch_norm: bool = True, last_batch_norm: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be ≥ 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, hidden_dim, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Prototypes(nn.Module):
    """L2-normalised prototype vectors (SwAV): ``(B, D)`` normalised features → ``(B, K)`` cosine scores."""

    def __init__(self, *, dim: int, num_prototypes: int) -> None:
        super().__init__()
        self.layer = nn.Linear(dim, num_prototypes, bias=False)

    @torch.no_grad()
    def normalize(self) -> None:
        self.layer.weight.copy_(F.normalize(self.layer.weight, dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)
