"""TS2Vec (Yue et al., AAAI 2022, "TS2Vec: Towards Universal Representation of Time Series").

Two overlapping random crops of each series are encoded (with timestamp masking inside the encoder); on the
overlap, the per-timestamp representations ``z1, z2 (B, T, D)`` are contrasted at every scale of a max-pooling
hierarchy (kernel 2 along time until one step is left):

- instance-wise: at each timestamp t, anchor ``z1[i, t]``'s positive is ``z2[i, t]``, the negatives are the other
  ``2B−2`` vectors of that timestamp;
- temporal: for series i, anchor ``z1[i, t]``'s positive is ``z2[i, t]``, the negatives are the other ``2T−2``
  timestamps of that series in both views.

Similarities are plain dot products (no temperature), as in the paper's code. The loss per scale is
``α·ℓ_inst + (1−α)·ℓ_temp`` (only ``α·ℓ_inst`` at the last, one-step scale), averaged over the scales.
Padded steps (varying-length series) are neither anchors nor negatives.

``average_weights``: evaluation reads an equal-weight running average of the encoder's weights over the initial
weights and every optimizer step (``torch.optim.swa_utils.AveragedModel``, updated after each step), which is what
the paper's code encodes with (``TS2Vec.net``), not the last weights.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import IncompatibleError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import distributed, gather_rows, masked_share, shared_ints
from omnissl.objectives.base import Objective


def _paired_nce(sim: Tensor, valid: Tensor, *, share: bool = False) -> Tensor:
    """Mean over valid anchors of ``−log softmax`` at the positive, for ``G`` groups of ``M = 2n`` items whose
    positives are ``i ↔ i±n``. sim: ``(G, M, M)`` similarities; valid: ``(G, M)`` items that take part."""
    g, m, _ = sim.shape
    n = m // 2
    eye = torch.eye(m, dtype=torch.bool, device=sim.device)
    blocked = eye.unsqueeze(0) | ~valid.unsqueeze(1)  # never the anchor itself, never a padded key
    logits = sim.float().masked_fill(blocked, float("-inf"))
    # A row with no key at all (every series padded at that step) is not an anchor; finite dummy logits keep
    # NaN out of even the intermediate values (anomaly detection, AMP scalers); it is excluded from the mean.
    logits = logits.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
    positive = torch.cat([torch.arange(n, m), torch.arange(0, n)]).to(sim.device)
    log_prob = F.log_softmax(logits, dim=-1).gather(2, positive.view(1, m, 1).expand(g, m, 1)).squeeze(2)
    anchors = valid & valid[:, positive]
    if share:  # this rank's share of the global anchor mean; no early exit: every rank must join the collective
        return masked_share(-log_prob.masked_fill(~anchors, 0.0).sum(), anchors.sum().float())
    if not bool(anchors.any()):
        return sim.sum() * 0.0
    return -(log_prob.masked_fill(~anchors, 0.0).sum() / anchors.sum())


def instance_contrastive_loss(z1: Tensor, z2: Tensor, valid: Tensor | None = None) -> Tensor:
    """z1, z2: ``(B, T, D)``; valid ``(B, T)``. Per timestamp, contrast the 2B vectors (0 when B = 1)."""
    if z1.shape[0] == 1:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2]).float().transpose(0, 1)  # (T, 2B, D)
    v = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device) if valid is None else \
        torch.cat([valid, valid]).transpose(0, 1)
    return _paired_nce(z @ z.transpose(1, 2), v)


def temporal_contrastive_loss(z1: Tensor, z2: Tensor, valid: Tensor | None = None) -> Tensor:
    """z1, z2: ``(B, T, D)``; valid ``(B, T)``. Per series, contrast its 2T timestamp vectors (0 when T = 1)."""
    if z1.shape[1] == 1:
        return z1.sum() * 0.0
    z = torch.cat([z1, z2], dim=1).float()  # (B, 2T, D)
    v = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device) if valid is None else torch.cat([valid, valid], 1)
    return _paired_nce(z @ z.transpose(1, 2), v, share=distributed())


def _pool(z: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Max-pool ``(B, T, D)`` by 2 along time over valid steps only; a window with none stays invalid (0)."""
    masked = z.masked_fill(~valid.unsqueeze(-1), float("-inf"))
    pooled = F.max_pool1d(masked.transpose(1, 2), kernel_size=2).transpose(1, 2)
    valid = F.max_pool1d(valid.float().unsqueeze(1), kernel_size=2).squeeze(1) > 0
    return pooled.masked_fill(~valid.unsqueeze(-1), 0.0), valid


def hierarchical_contrastive_loss(z1: Tensor, z2: Tensor, *, alpha: float = 0.5, temporal_unit: int = 0,
                                  valid: Tensor | None = None) -> Tensor:
    """TS2Vec's loss over ``(B, T, D)`` views of the same timestamps; ``valid (B, T)`` marks non-padded steps.
    The temporal term starts at depth ``temporal_unit`` of the hierarchy.

    Under DDP the instance term contrasts the **global** batch (differentiable gather; the full term on every
    rank) and the per-series temporal term is each rank's share of the global anchor mean."""
    if z1.shape != z2.shape or z1.ndim != 3:
        raise ValueError(f"need two (B, T, D) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    valid = torch.ones(z1.shape[:2], dtype=torch.bool, device=z1.device) if valid is None else valid
    gather = distributed()
    g1, g2, g_valid = (gather_cat(z1), gather_cat(z2), gather_rows(valid)[0]) if gather else (z1, z2, valid)
    loss, depth = z1.new_zeros((), dtype=torch.float32), 0
    while z1.shape[1] > 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(g1, g2, g_valid)
        if depth >= temporal_unit and alpha != 1:
            loss = loss + (1 - alpha) * temporal_contrastive_loss(z1, z2, valid)
        depth += 1
        (z1, valid1), (z2, _) = _pool(z1, valid), _pool(z2, valid)
        valid = valid1
        if gather:  # max-pooling is per series, so pooling the gathered copy equals gathering the pooled one
            (g1, g_valid1), (g2, _) = _pool(g1, g_valid), _pool(g2, g_valid)
            g_valid = g_valid1
        else:
            g1, g2, g_valid = z1, z2, valid
    if z1.shape[1] == 1:
        if alpha != 0:
            loss = loss + alpha * instance_contrastive_loss(g1, g2, g_valid)
        depth += 1
    return loss / depth


def take_per_row(x: Tensor, start: Tensor, length: int) -> Tensor:
    """``x (B, C, T)``, ``start (B,)`` → ``(B, C, length)`` windows ``x[i, :, start_i : start_i + length]``."""
    index = start.view(-1, 1) + torch.arange(length, device=x.device).view(1, -1)
    return x.gather(2, index.unsqueeze(1).expand(x.shape[0], x.shape[1], length))


class TS2Vec(Objective):
    """Random overlapping crops (paper §3.2 'contextual consistency') → encoder tokens → hierarchical loss."""

    def __init__(self, encoder: Encoder, *, alpha: float, temporal_unit: int, average_weights: bool) -> None:
        super().__init__(encoder)
        if "tokens" not in encoder.output_kinds:
            raise IncompatibleError(f"ts2vec needs per-timestamp token outputs; {type(encoder).__name__} only pools")
        self.alpha, self.temporal_unit = alpha, temporal_unit
        self.averaged: AveragedModel | None = None
        if average_weights:
            # A submodule, so checkpoints carry the average and its count; never trained (no grads, no optimizer
            # state), only copied into. Starts from the initial weights, as the paper's code does.
            self.averaged = AveragedModel(encoder)
            self.averaged.requires_grad_(False)
            self.averaged.update_parameters(encoder)  # the initial weights are the first of the averaged snapshots

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.encoder)

    @property
    def towers(self) -> dict[str, Encoder]:
        """The averaged encoder when ``average_weights`` (what evaluation and export read), else the encoder."""
        if self.averaged is None:
            return super().towers
        return {self.tower_name: self.averaged.module}  # type: ignore[dict-item]

    def crops(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """The paper's sampling: an overlap ``[a1, b1)`` of length ``crop_l`` inside two crops ``[a2, b1)`` and
        ``[a1, b2)`` with ``a2 ≤ a1 < b1 ≤ b2``, shifted per series by a random offset (torch RNG, on device)."""
        t, device = x.shape[-1], x.device
        low = min(2 ** (self.temporal_unit + 1), t)

        def draw(lo: int, hi: int, size: int = 1) -> Tensor:  # uniform integers in [lo, hi)
            return torch.randint(lo, hi, (size,), device=device)

        crop_l = int(draw(low, t + 1))
        left = int(draw(0, t - crop_l + 1))
        right = left + crop_l
        e_left = int(draw(0, left + 1))
        e_right = int(draw(right, t + 1))
        # one crop geometry for the global batch, as in one process (and the instance term gathers equal lengths)
        crop_l, left, right, e_left, e_right = shared_ints([crop_l, left, right, e_left, e_right], device=device)
        offset = draw(-e_left, t - e_right + 1, x.shape[0])
        first = take_per_row(x, offset + e_left, right - e_left)
        second = take_per_row(x, offset + left, e_right - left)
        overlap = take_per_row(x, offset + left, crop_l)
        return first, second, ~torch.isnan(overlap).all(dim=1), crop_l

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0]
        first, second, valid, crop_l = self.crops(x)
        tokens1, tokens2 = self.encoder(first).tokens, self.encoder(second).tokens
        if tokens1.shape[1] != first.shape[-1]:  # the crops are aligned in time steps, so tokens must be steps
            raise IncompatibleError(f"ts2vec needs one token per time step; {type(self.encoder).__name__} gave "
                                    f"{tokens1.shape[1]} tokens for {first.shape[-1]} steps (patch encoders don't fit)")
        z1, z2 = tokens1[:, -crop_l:], tokens2[:, :crop_l]
        loss = hierarchical_contrastive_loss(z1, z2, alpha=self.alpha, temporal_unit=self.temporal_unit, valid=valid)
        pooled = z1.float().masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(dim=1)
        pooled = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
        return ObjectiveOutput(loss=loss, logs={"crop_len": float(crop_l)}, embeddings=pooled.detach())


@OBJECTIVES.register("ts2vec", description="TS2Vec hierarchical instance + temporal contrast (Yue et al., 2022)")
def build_ts2vec(*, encoder: Encoder, alpha: float = 0.5, temporal_unit: int = 0,
                 average_weights: bool = False) -> TS2Vec:
    """Paper defaults: α = 0.5, temporal contrast from the first scale. Needs an encoder with token outputs.
    ``average_weights``: evaluate the running average of the weights (the paper's code; the recipe sets it)."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return TS2Vec(encoder, alpha=alpha, temporal_unit=temporal_unit, average_weights=average_weights)
