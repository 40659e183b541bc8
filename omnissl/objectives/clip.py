"""CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language Supervision").

Any two towers: each backbone's pooled output ``(B, D_t)`` → its own linear projection → ``(B, E)``, L2-normalised.
Loss: symmetric cross-entropy over the ``B × B`` cosine-similarity matrix scaled by ``exp(s)``, where the learnable
log-scale ``s`` starts at ``log(1/0.07)`` and is clamped to ``[0, log 100]`` (the paper's clip).

Global batch under DDP: both towers' projections are gathered from every rank with the differentiable
``gather_cat`` and the ``N × N`` loss is computed in full on each rank (open_clip with ``gather_with_grad=True``).
Each rank's loss is then the single-process loss, and the gradient of a rank's rows sums every rank's loss, which
DDP's averaging turns into exactly the single-process gradient. (Gathering constants with only the local slice
differentiable, as before, made every gradient ``1/W`` too small.)
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import ConfigError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives.base import PairedObjective

MAX_LOG_SCALE = math.log(100.0)


def clip_loss(a: Tensor, b: Tensor, *, log_scale: Tensor) -> Tensor:
    """a, b: ``(B, E)`` L2-normalised; row i of each is a pair. Mean of the a→b and b→a cross-entropies."""
    logits = log_scale.exp() * a @ b.T
    targets = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class PairedProjector(PairedObjective):
    """Shared plumbing for CLIP-style objectives: per-tower projections, optional frozen towers (LiT).

    ``exactly_two``: CLIP and SigLIP pair two towers; ImageBind-style binding (``bind``) takes two or more.
    """

    exactly_two: ClassVar[bool] = True

    def __init__(self, encoders: dict[str, Encoder], *, embed_dim: int, frozen: list[str]) -> None:
        if self.exactly_two and len(encoders) != 2:
            raise ConfigError(f"towers: {type(self).__name__} pairs exactly two towers, got {list(encoders)}")
        if len(encoders) < 2:
            raise ConfigError(f"towers: {type(self).__name__} needs at least two towers, got {list(encoders)}")
        unknown = [name for name in frozen if name not in encoders]
        if unknown:
            raise ConfigError(f"objective.frozen: no tower named {unknown}; towers: {list(encoders)}")
        super().__init__(encoders)
        self.names = list(encoders)
        self.frozen = list(frozen)
        for name in frozen:  # LiT (Zhai et al., 2022): lock one pretrained tower, tune the other
            encoders[name].requires_grad_(False)
        self.projections = nn.ModuleDict({n: nn.Linear(e.embed_dim, embed_dim, bias=False) for n, e in encoders.items()})

    def train(self, mode: bool = True) -> PairedProjector:
        super().train(mode)
        for name in self.frozen:
            self.encoders[name].eval()
        return self

    @property
    def trained_pairs(self) -> list[tuple[str, str]]:
        """The tower pairs the loss contrasts (retrieval marks every other pair as emergent)."""
        return [(self.names[0], self.names[1])]

    def project(self, views: dict[str, ViewSet]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Every tower's normalised projection gathered over ranks ``{tower: (N, E)}`` and this rank's pooled
        backbone features ``{tower: (B, D_t)}``. Towers are gathered in ``names`` order, the same on every rank."""
        missing = [n for n in self.names if n not in views]
        if missing:
            raise ConfigError(f"towers: the batch has no input for tower(s) {missing}")
        projected, pooled = {}, {}
        for name in self.names:
            pooled[name] = self.encoders[name](views[name].global_views[0]).pooled
            projected[name] = gather_cat(F.normalize(self.projections[name](pooled[name]).float(), dim=-1))
        return projected, pooled

    def embed(self, views: dict[str, ViewSet]) -> tuple[Tensor, Tensor, Tensor]:
        """The two normalised projections gathered over ranks ``(N, E)`` and this rank's first-tower pooled
        features ``(B, D)``."""
        projected, pooled = self.project(views)
        first, second = self.names[0], self.names[1]
        return projected[first], projected[second], pooled[first]


class CLIP(PairedProjector):
    def __init__(self, encoders: dict[str, Encoder], *, embed_dim: int, init_temperature: float,
                 frozen: list[str]) -> None:
        super().__init__(encoders, embed_dim=embed_dim, frozen=frozen)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def forward(self, views: dict[str, ViewSet]) -> ObjectiveOutput:  # type: ignore[override]
        a, b, pooled = self.embed(views)
        log_scale = self.log_scale.clamp(0.0, MAX_LOG_SCALE)
        loss = clip_loss(a, b, log_scale=log_scale)
        return ObjectiveOutput(loss=loss, logs={"clip": loss.detach(), "logit_scale": log_scale.detach().exp()},
                               embeddings=pooled.detach())

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        with torch.no_grad():  # keep the stored parameter inside its clamp, not only its use
            self.log_scale.clamp_(0.0, MAX_LOG_SCALE)


@OBJECTIVES.register("clip", modality="multimodal", description="CLIP: symmetric InfoNCE between two towers")
def build_clip(*, encoders: dict[str, Encoder], embed_dim: int = 128, init_temperature: float = 0.07,
               frozen: list[str] = []) -> CLIP:  # noqa: B006 - a recipe value, never mutated
    return CLIP(encoders, embed_dim=embed_dim, init_temperature=init_temperature, frozen=list(frozen))
