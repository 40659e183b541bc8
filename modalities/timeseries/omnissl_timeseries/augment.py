"""Batched time-series augmentations on the training device, per-sample randomness from torch's RNG.

Every op maps float ``(B, C, T)`` → ``(B, C, T)``. NaN marks padding (varying-length series) and missing values:
ops never turn a NaN into a number, and the time-moving ops (time warp, permutation, crops) work inside each
series' own valid length, so padding stays at the end. Sources: jitter/scaling/permutation — TS-TCC's weak and
strong augmentations (Eldele et al., IJCAI 2021); magnitude/time warp — Um et al., ICMI 2017; window slicing —
Le Guennec et al., 2016; timestamp masking and overlapping crops — TS2Vec (Yue et al., AAAI 2022).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.registry import AUGMENTATIONS

SeriesOp = Callable[[Tensor], Tensor]


def as_series(x: Tensor) -> Tensor:
    if x.ndim != 3:
        raise ValueError(f"time-series augmentations expect (B, C, T), got shape {tuple(x.shape)}")
    return x.float()


def valid_lengths(x: Tensor) -> Tensor:
    """``(B,)`` one past the last step where any channel is observed (padding is trailing all-NaN steps)."""
    observed = ~torch.isnan(x).all(dim=1)  # (B, T)
    steps = torch.arange(1, x.shape[-1] + 1, device=x.device)
    return (observed * steps).amax(dim=1).clamp_min(1)


def _chance(batch: int, p: float, device: torch.device) -> Tensor:
    return (torch.rand(batch, device=device) < p).view(-1, 1, 1)


def resample_time(x: Tensor, positions: Tensor, lengths: Tensor) -> Tensor:
    """Read ``x`` at fractional source steps ``positions (B, T)`` by linear interpolation.

    Output steps at or beyond each series' length stay NaN (padding); ``positions`` are clamped to
    ``[0, length−1]`` so a warp or crop never reads padding.
    """
    b, c, t = x.shape
    limit = (lengths - 1).view(-1, 1).float()
    pos = torch.minimum(positions.clamp_min(0), limit)
    low = pos.floor().long()
    high = torch.minimum(low + 1, limit.long())
    weight = (pos - low.float()).unsqueeze(1)
    take = lambda idx: x.gather(2, idx.unsqueeze(1).expand(b, c, t))
    x_low, x_high = take(low), take(high)
    out = torch.where(weight > 0, x_low * (1 - weight) + x_high * weight, x_low)  # w=0 must not read NaN·0
    pad = torch.arange(t, device=x.device).view(1, 1, -1) >= lengths.view(-1, 1, 1)
    return out.masked_fill(pad, float("nan"))


def smooth_curves(b: int, rows: int, t: int, knots: int, sigma: float, device: torch.device) -> Tensor:
    """``(b, rows, t)`` random smooth curves around 1: ``knots+2`` N(1, σ²) knots, bicubic interpolation."""
    anchors = 1 + sigma * torch.randn(b, rows, 1, knots + 2, device=device)
    return F.interpolate(anchors, size=(1, t), mode="bicubic", align_corners=True).squeeze(2)


@AUGMENTATIONS.register("ts_jitter", modality="timeseries", description="add N(0, σ²) noise to every value")
def jitter(*, sigma: float = 0.03, p: float = 1.0) -> SeriesOp:
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        noisy = x + sigma * torch.randn_like(x)
        return torch.where(_chance(x.shape[0], p, x.device), noisy, x)
    return apply


@AUGMENTATIONS.register("ts_scaling", modality="timeseries", description="multiply each channel by N(mean, σ²)")
def scaling(*, sigma: float = 0.1, mean: float = 1.0, p: float = 1.0) -> SeriesOp:
    """TS-TCC's weak augmentation scales with ``mean=2`` (their code); 1 keeps the amplitude on average."""
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        factor = mean + sigma * torch.randn(x.shape[0], x.shape[1], 1, device=x.device)
        return torch.where(_chance(x.shape[0], p, x.device), x * factor, x)
    return apply


@AUGMENTATIONS.register("ts_magnitude_warp", modality="timeseries", description="multiply by a smooth random curve")
def magnitude_warp(*, sigma: float = 0.2, knots: int = 4, p: float = 1.0) -> SeriesOp:
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        curve = smooth_curves(x.shape[0], x.shape[1], x.shape[2], knots, sigma, x.device)
        return torch.where(_chance(x.shape[0], p, x.device), x * curve, x)
    return apply


@AUGMENTATIONS.register("ts_time_warp", modality="timeseries", description="smooth monotone random re-timing")
def time_warp(*, sigma: float = 0.2, knots: int = 4, p: float = 1.0) -> SeriesOp:
    """Random local speeds (a smooth curve around 1, clamped positive) integrate to a monotone map of each
    series' ``[0, L−1]`` onto itself; endpoints are kept, so the series is only stretched and squeezed."""
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        b, _, t = x.shape
        lengths = valid_lengths(x)
        speed = smooth_curves(b, 1, t, knots, sigma, x.device).squeeze(1).clamp_min(0.1)
        steps = torch.arange(t, device=x.device).view(1, -1)
        speed = speed.masked_fill(steps >= lengths.view(-1, 1), 0.0)
        clock = torch.cumsum(speed, dim=1) - speed[:, :1]  # starts at 0, increases while inside the series
        end = clock.gather(1, (lengths - 1).view(-1, 1)).clamp_min(1e-6)
        positions = clock / end * (lengths - 1).view(-1, 1)
        return torch.where(_chance(b, p, x.device), resample_time(x, positions, lengths), x)
    return apply


@AUGMENTATIONS.register("ts_permute_segments", modality="timeseries",
                        description="cut into 1..max_segments pieces and shuffle them (TS-TCC strong)")
def permute_segments(*, max_segments: int = 5, equal: bool = False, p: float = 1.0) -> SeriesOp:
    """Each series gets ``n ~ U{1..max_segments}`` pieces (random or equal cut points inside its valid length),
    put in a random order. Values are only moved, never changed; padding stays at the end."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be ≥ 1, got {max_segments}")

    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        b, c, t = x.shape
        device = x.device
        lengths = valid_lengths(x).view(-1, 1)
        pieces = torch.randint(1, max_segments + 1, (b, 1), device=device)
        slots = torch.arange(1, max_segments, device=device).view(1, -1)  # cut slots 1..M-1
        if equal:
            cuts = (slots * lengths / pieces).floor().long()
        else:
            cuts = 1 + (torch.rand(b, max_segments - 1, device=device) * (lengths - 1).clamp_min(0)).long()
        cuts = torch.where(slots < pieces, cuts, lengths)  # unused slots cut at the end: no effect
        steps = torch.arange(t, device=device).view(1, -1)
        segment = (cuts.unsqueeze(1) <= steps.unsqueeze(2)).sum(dim=2)  # (B, T) piece index of each step
        rank = torch.rand(b, max_segments, device=device).argsort(dim=1).argsort(dim=1)
        key = rank.gather(1, segment) * t + steps
        key = torch.where(steps < lengths, key, max_segments * t + steps)  # padding sorts last, in order
        order = key.argsort(dim=1)
        moved = x.gather(2, order.unsqueeze(1).expand(b, c, t))
        return torch.where(_chance(b, p, device), moved, x)
    return apply


@AUGMENTATIONS.register("ts_window_crop", modality="timeseries",
                        description="window slicing: a random window resized back to the series' length")
def window_crop(*, scale: tuple[float, float] = (0.5, 1.0), p: float = 1.0) -> SeriesOp:
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min ≤ max ≤ 1, got {scale}")

    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        b, _, t = x.shape
        lengths = valid_lengths(x)
        span = (lengths - 1).float() * torch.empty(b, device=x.device).uniform_(*scale)
        start = torch.rand(b, device=x.device) * ((lengths - 1).float() - span)
        fraction = torch.arange(t, device=x.device).view(1, -1) / (lengths - 1).clamp_min(1).view(-1, 1)
        positions = start.view(-1, 1) + fraction * span.view(-1, 1)
        return torch.where(_chance(b, p, x.device), resample_time(x, positions, lengths), x)
    return apply


@AUGMENTATIONS.register("ts_random_crop", modality="timeseries",
                        description="keep a random window of each series, the rest becomes padding (NaN)")
def random_crop(*, scale: tuple[float, float] = (0.5, 1.0)) -> SeriesOp:
    """Two crops of one series overlap in expectation; the encoders read NaN as padding, so a view sees only
    its window, without resizing (TS2Vec-style cropping for objectives that compare pooled vectors)."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min ≤ max ≤ 1, got {scale}")

    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        b, _, t = x.shape
        lengths = valid_lengths(x).float()
        width = (lengths * torch.empty(b, device=x.device).uniform_(*scale)).ceil().clamp_min(1)
        start = (torch.rand(b, device=x.device) * (lengths - width + 1)).floor()
        steps = torch.arange(t, device=x.device).view(1, -1)
        keep = (steps >= start.view(-1, 1)) & (steps < (start + width).view(-1, 1))
        return x.masked_fill(~keep.unsqueeze(1), float("nan"))
    return apply


@AUGMENTATIONS.register("ts_timestamp_mask", modality="timeseries", description="zero random time steps (all channels)")
def timestamp_mask(*, ratio: float = 0.1) -> SeriesOp:
    """Each observed step is zeroed with probability ``ratio``; padding (NaN) is left as padding."""
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        hit = (torch.rand(x.shape[0], 1, x.shape[2], device=x.device) < ratio) & ~torch.isnan(x)
        return x.masked_fill(hit, 0.0)
    return apply


@AUGMENTATIONS.register("ts_channel_dropout", modality="timeseries",
                        description="zero whole channels with probability p, always keeping one")
def channel_dropout(*, p: float = 0.2) -> SeriesOp:
    def apply(series: Tensor) -> Tensor:
        x = as_series(series)
        b, c, _ = x.shape
        drop = torch.rand(b, c, device=x.device) < p
        keep_one = torch.randint(0, c, (b,), device=x.device)
        drop[torch.arange(b, device=x.device), keep_one] = False
        return x.masked_fill(drop.unsqueeze(2) & ~torch.isnan(x), 0.0)
    return apply
