"""TNC — Temporal Neighbourhood Coding (Tonekaboni et al., 2021, "Unsupervised Representation Learning for Time
Series with Temporal Neighborhood Coding").

For each series ``x (B, C, T)`` (NaN = trailing padding: windows are drawn inside each series' observed length
``T_b``) three windows of ``window`` steps are cut: an anchor at a uniform start ``a``, a neighbour at
``a + U{−δ..δ}`` (clipped into the series) and a non-neighbour at a uniform start farther than δ from ``a``
(δ = ``neighbourhood``; the paper picks δ per signal with an ADF stationarity test — here it is a parameter).
The encoder maps each window to ``z (B, D)`` (one call on the ``3B`` windows); the discriminator
``D(z_a, z_b) = Linear(ReLU(Linear([z_a; z_b])))`` (2D → 4D → 1) scores "same neighbourhood". Non-neighbours may
still be similar (the positive-unlabelled setting), hence the debiased loss of the paper's Eq. 3 / reference code:

    L = ½ · [BCE(D(z_a, z_n), 1) + w·BCE(D(z_a, z_u), 1) + (1 − w)·BCE(D(z_a, z_u), 0)]

per sample, averaged over the batch (a rank's share of the global mean under DDP), with ``w`` the weight of
non-neighbours treated as positives (paper: 0.05 on the simulated data, 0.1–0.2 elsewhere). All draws from torch's
RNG with the batch as dim 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import ConfigError, DataError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log, sample_mean
from omnissl.objectives.base import Objective


def observed_lengths(x: Tensor) -> Tensor:
    """``(B,)`` steps up to the last one observed in any channel (trailing all-NaN steps are padding)."""
    observed = ~torch.isnan(x).all(dim=1)  # (B, T)
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return (observed * steps).amax(dim=1)


def draw_starts(lengths: Tensor, *, window: int, neighbourhood: int) -> tuple[Tensor, Tensor, Tensor]:
    """Start indices ``(B,)`` of the anchor, neighbour and non-neighbour windows (see the module docstring)."""
    last = lengths - window  # inclusive last start per series
    if bool((last < 2 * neighbourhood + 1).any()):
        row = int(last.argmin())
        raise DataError(f"tnc: series {row} of the batch has {int(lengths[row])} observed steps; window {window} "
                        f"with neighbourhood {neighbourhood} needs ≥ {window + 2 * neighbourhood + 1}")
    batch, device = lengths.shape[0], lengths.device
    anchor = (torch.rand(batch, device=device) * (last + 1)).long().minimum(last)
    offset = torch.randint(-neighbourhood, neighbourhood + 1, (batch,), device=device)
    neighbour = (anchor + offset).clamp(min=torch.zeros_like(last), max=last)
    left = (anchor - neighbourhood).clamp_min(0)  # starts 0 .. anchor−δ−1
    right = (last - anchor - neighbourhood).clamp_min(0)  # starts anchor+δ+1 .. last
    pick = (torch.rand(batch, device=device) * (left + right)).long().minimum(left + right - 1)
    distant = torch.where(pick < left, pick, anchor + neighbourhood + 1 + (pick - left))
    return anchor, neighbour, distant


def cut_windows(x: Tensor, starts: Tensor, window: int) -> Tensor:
    """``x (B, C, T)``, ``starts (B,)`` → ``(B, C, window)``."""
    index = starts.view(-1, 1, 1) + torch.arange(window, device=x.device).view(1, 1, -1)
    return x.gather(2, index.expand(-1, x.shape[1], -1))


def tnc_loss(neighbour_logits: Tensor, distant_logits: Tensor, *, weight: float) -> Tensor:
    """The debiased PU loss per sample ``(B,)`` from the discriminator's logits ``(B,)`` of both pairs."""
    ones, zeros = torch.ones_like(neighbour_logits), torch.zeros_like(distant_logits)
    positive = F.binary_cross_entropy_with_logits(neighbour_logits, ones, reduction="none")
    unlabelled_pos = F.binary_cross_entropy_with_logits(distant_logits, ones, reduction="none")
    unlabelled_neg = F.binary_cross_entropy_with_logits(distant_logits, zeros, reduction="none")
    return (positive + weight * unlabelled_pos + (1 - weight) * unlabelled_neg) / 2


class TNC(Objective):
    def __init__(self, encoder: Encoder, *, window: int, neighbourhood: int, weight: float) -> None:
        super().__init__(encoder)
        self.window, self.neighbourhood, self.weight = window, neighbourhood, weight
        dim = encoder.embed_dim
        self.discriminator = nn.Sequential(nn.Linear(2 * dim, 4 * dim), nn.ReLU(inplace=True), nn.Linear(4 * dim, 1))

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0] if views.global_views else views.original
        if not isinstance(x, Tensor) or x.ndim != 3:
            raise DataError(f"tnc: expects series (B, C, T), got {getattr(x, 'shape', type(x).__name__)}")
        starts = draw_starts(observed_lengths(x), window=self.window, neighbourhood=self.neighbourhood)
        z = self.encoder(torch.cat([cut_windows(x, s, self.window) for s in starts])).pooled
        anchor, neighbour, distant = z.split(x.shape[0])
        d_n = self.discriminator(torch.cat([anchor, neighbour], dim=1)).squeeze(1)
        d_u = self.discriminator(torch.cat([anchor, distant], dim=1)).squeeze(1)
        loss = sample_mean(tnc_loss(d_n.float(), d_u.float(), weight=self.weight))
        accuracy = sample_mean(((d_n > 0).float() + (d_u < 0).float()) / 2)
        return ObjectiveOutput(loss=loss, embeddings=anchor.detach(),
                               logs={"tnc_bce": global_log(loss), "discriminator_acc": global_log(accuracy)})


@OBJECTIVES.register("tnc", modality="timeseries",
                     description="TNC: discriminate temporal neighbours with a debiased PU loss (Tonekaboni et al., 2021)")
def build_tnc(*, encoder: Encoder, window: int = 32, neighbourhood: int = 16, weight: float = 0.05) -> TNC:
    """Paper: windows of 50–2500 steps per data set, δ from an ADF test, w = 0.05 (simulation)."""
    if window < 1 or neighbourhood < 0:
        raise ConfigError(f"objective.window must be ≥ 1 and objective.neighbourhood ≥ 0, got {window}, {neighbourhood}")
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"objective.weight: must be in [0, 1], got {weight}")
    return TNC(encoder, window=window, neighbourhood=neighbourhood, weight=weight)
