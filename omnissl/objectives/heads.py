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


class NormalizedLinear(nn.Module):
    """Linear layer with unit-norm weight rows (DINO's weight-normalised last layer with the norm fixed to 1).

    x: ``(B, in_dim)`` → ``(B, out_dim)``. Written without ``weight_norm`` parametrisation so EMA copies and
    ``deepcopy`` stay plain parameters.
    """

    def __init__(self, *, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """DINO projection head (Caron et al., 2021, §3.1): 3-layer MLP (GELU) → bottleneck → ℓ2-norm → K logits.

    x: ``(B, in_dim)`` → ``(B, out_dim)`` un-normalised prototype scores.
    """

    def __init__(self, *, in_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256, out_dim: int = 65536,
                 num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, hidden_dim), nn.GELU()]
            dim = hidden_dim
        layers.append(nn.Linear(dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for module in self.mlp.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = NormalizedLinear(in_dim=bottleneck_dim, out_dim=out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))
