"""N-tower binding (Girdhar et al., 2023, "ImageBind: One Embedding Space To Bind Them All").

Three or more towers share one embedding space through a single **anchor** modality: every other tower is
contrasted with the anchor only, never with each other, yet the non-anchor towers end up aligned (the paper's
"emergent" alignment, e.g. audio ↔ text although no audio–text pair was ever seen).

Shapes: each tower ``t``'s pooled backbone output ``(B, D_t)`` → its own linear projection → ``(B, E)``,
L2-normalised (the anchor has one projection, shared by all of its pairs, so every tower lands in the anchor's space).
For each non-anchor tower ``m`` the pair loss is CLIP's symmetric InfoNCE (:func:`omnissl.objectives.clip.clip_loss`,
the paper's loss) or SigLIP's pairwise sigmoid (:func:`omnissl.objectives.siglip.siglip_loss`) between the
``(N, E)`` anchor and ``(N, E)`` ``m`` projections, with a learnable scale (and SigLIP bias) per pair; the loss is
the mean over the ``M`` non-anchor towers, ``L = (1/M) Σ_m L(anchor, m)``, each pair logged as ``<loss>/<anchor>-<m>``.
The paper freezes the image and text towers of a pretrained CLIP and trains the others; ``frozen`` does the same
for any tower (LiT-style; a frozen tower's projection still trains).

Global batch under DDP: exactly as CLIP/SigLIP — every tower's projections are gathered with the differentiable
``gather_cat`` (``PairedProjector.project``) and each pair's ``N × N`` loss is computed in full on every rank.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from omnissl.core.errors import ConfigError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives.clip import MAX_LOG_SCALE, PairedProjector, clip_loss
from omnissl.objectives.siglip import siglip_loss


class Bind(PairedProjector):
    exactly_two = False

    def __init__(self, encoders: dict[str, Encoder], *, anchor: str, loss: Literal["clip", "siglip"],
                 embed_dim: int, init_temperature: float, init_bias: float, frozen: list[str]) -> None:
        if anchor not in encoders:
            raise ConfigError(f"objective.anchor: no tower named '{anchor}'; towers: {list(encoders)}")
        if loss not in ("clip", "siglip"):
            raise ConfigError(f"objective.loss: expected 'clip' or 'siglip', got {loss!r}")
        if not init_temperature > 0:
            raise ConfigError(f"objective.init_temperature: must be > 0, got {init_temperature}")
        super().__init__(encoders, embed_dim=embed_dim, frozen=frozen)
        self.anchor, self.loss_name = anchor, loss
        self.bound = [name for name in self.names if name != anchor]
        # one scale per pair: the paper fixes a temperature per modality; learnable here, as CLIP's and SigLIP's
        start = math.log(1.0 / init_temperature)
        self.log_scales = nn.ParameterDict({m: nn.Parameter(torch.tensor(start)) for m in self.bound})
        self.biases = nn.ParameterDict({m: nn.Parameter(torch.tensor(init_bias)) for m in self.bound}
                                       if loss == "siglip" else {})

    @property
    def trained_pairs(self) -> list[tuple[str, str]]:
        return [(self.anchor, m) for m in self.bound]

    def pair_loss(self, anchor: Tensor, other: Tensor, tower: str) -> tuple[Tensor, Tensor]:
        """One pair's loss on ``(N, E)`` projections and the logit scale it used."""
        if self.loss_name == "clip":
            log_scale = self.log_scales[tower].clamp(0.0, MAX_LOG_SCALE)
            return clip_loss(anchor, other, log_scale=log_scale), log_scale.exp()
        log_scale = self.log_scales[tower]
        return siglip_loss(anchor, other, log_scale=log_scale, bias=self.biases[tower]), log_scale.exp()

    def forward(self, views: dict[str, ViewSet]) -> ObjectiveOutput:  # type: ignore[override]
        projected, pooled = self.project(views)
        logs: dict[str, Tensor] = {}
        losses = []
        for tower in self.bound:
            loss, scale = self.pair_loss(projected[self.anchor], projected[tower], tower)
            losses.append(loss)
            logs[f"{self.loss_name}/{self.anchor}-{tower}"] = loss.detach()
            logs[f"logit_scale/{self.anchor}-{tower}"] = scale.detach()
        total = torch.stack(losses).mean()
        return ObjectiveOutput(loss=total, logs={self.loss_name: total.detach(), **logs},
                               embeddings=pooled[self.anchor].detach())

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        if self.loss_name == "clip":
            with torch.no_grad():  # keep the stored parameters inside CLIP's clamp, not only their use
                for log_scale in self.log_scales.values():
                    log_scale.clamp_(0.0, MAX_LOG_SCALE)


@OBJECTIVES.register("bind", modality="multimodal",
                     description="ImageBind: every tower bound to one anchor tower with CLIP/SigLIP losses")
def build_bind(*, encoders: dict[str, Encoder], anchor: str, loss: Literal["clip", "siglip"] = "clip",
               embed_dim: int = 128, init_temperature: float | None = None, init_bias: float = -10.0,
               frozen: list[str] = []) -> Bind:  # noqa: B006 - a recipe value, never mutated
    """``anchor``: the tower every other tower is bound to (ImageBind: image). ``init_temperature``: the starting
    ``1/scale`` of every pair (default CLIP's 0.07, SigLIP's 0.1 = its ``t' = log 10``). ``init_bias``: SigLIP's
    starting bias (unused by ``clip``). ``frozen``: towers whose backbones do not train."""
    start = init_temperature if init_temperature is not None else (0.07 if loss == "clip" else 0.1)
    return Bind(encoders, anchor=anchor, loss=loss, embed_dim=embed_dim, init_temperature=start,
                init_bias=init_bias, frozen=list(frozen))
