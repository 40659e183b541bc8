"""SigLIP (Zhai et al., 2023, "Sigmoid Loss for Language Image Pre-Training").

Every pair ``(i, j)`` of the ``B × B`` similarity matrix is a binary problem: label ``z_ij = 1`` if ``i = j``
else ``−1``; loss ``−(1/B) Σ_ij log σ(z_ij (t·a_i·b_j + b))`` with learnable ``t = exp(t')`` (init ``t' = log 10``)
and bias ``b`` (init −10), as in the paper. Inputs are L2-normalised ``(B, E)`` projections of the two towers.

Global batch under DDP: as CLIP (``PairedProjector.embed`` gathers both towers with ``gather_cat``), the full
``N × N`` pairwise loss normalised by the global ``N`` on every rank — the paper's "chunked" form computes the same
sum with less memory; this one is simpler and exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.objectives.clip import PairedProjector
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def siglip_loss(a: Tensor, b: Tensor, *, log_scale: Tensor, bias: Tensor) -> Tensor:
    logits = log_scale.exp() * a @ b.T + bias
    signs = 2 * torch.eye(a.shape[0], device=a.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(signs * logits).sum() / a.shape[0]


class SigLIP(PairedProjector):
    def __init__(self, encoders: dict[str, Encoder], *, embed_dim: int, init_log_scale: float, init_bias: float,
                 frozen: list[str]) -> None:
        super().__init__(encoders, embed_dim=embed_dim, frozen=frozen)
        self.log_scale = nn.Parameter(torch.tensor(init_log_scale))
        self.bias = nn.Parameter(torch.tensor(init_bias))

    def forward(self, views: dict[str, ViewSet]) -> ObjectiveOutput:  # type: ignore[override]
        a, b, pooled = self.embed(views)
        loss = siglip_loss(a, b, log_scale=self.log_scale, bias=self.bias)
        return ObjectiveOutput(loss=loss, logs={"siglip": loss.detach(), "logit_scale": self.log_scale.detach().exp(),
                                                "logit_bias": self.bias.detach()}, embeddings=pooled.detach())


@OBJECTIVES.register("siglip", modality="multimodal", description="SigLIP: pairwise sigmoid loss between two towers")
def build_siglip(*, encoders: dict[str, Encoder], embed_dim: int = 128, init_log_scale: float = math.log(10.0),
                 init_bias: float = -10.0, frozen: list[str] = []) -> SigLIP:  # noqa: B006
    return SigLIP(encoders, embed_dim=embed_dim, init_log_scale=init_log_scale, init_bias=init_bias,
                  frozen=list(frozen))
