"""Batched audio augmentations on the training device, randomness per sample from torch's RNG.

Each op maps ``{"wave": (B, T), "padding_mask": (B, T)}`` to a new dict (views share the original batch, so
nothing is modified in place). Waveform ops: random crop/pad to a fixed duration, gain, additive white noise
at a random SNR, circular time shift within each utterance, speed perturbation by resampling (Ko et al., 2015,
"Audio Augmentation for Speech Recognition"). ``spec_augment`` (Park et al., 2019) only records time/frequency
masks, which log-mel encoders apply in feature space; put it after the waveform ops.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from omnissl.core.registry import AUGMENTATIONS
from omnissl_speech.features import as_audio

AudioOp = Callable[[Any], dict[str, Tensor]]


def _start(x: Any, op: str) -> tuple[Tensor, Tensor, Tensor]:
    if isinstance(x, dict) and ("time_mask" in x or "freq_mask" in x):
        raise ValueError(f"{op} after spec_augment would misalign its masks: put spec_augment last")
    wave, padding = as_audio(x)
    return wave, padding, (~padding).sum(dim=1)


def _chance(batch: int, p: float, device: torch.device) -> Tensor:
    return torch.rand(batch, device=device) < p


def _gather(wave: Tensor, index: Tensor, valid: Tensor) -> Tensor:
    out = wave.gather(1, index.clamp(0, wave.shape[1] - 1))
    return out * valid.to(out.dtype)


class RandomCrop:
    """Fixed ``length`` samples per utterance: a random window of longer ones, zero-padding (masked) for shorter."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, x: Any) -> dict[str, Tensor]:
        wave, _, lengths = _start(x, "random_crop")
        slack = (lengths - self.length).clamp_min(0)
        start = (torch.rand(wave.shape[0], device=wave.device) * (slack + 1).float()).floor().long()
        index = start.unsqueeze(1) + torch.arange(self.length, device=wave.device)
        valid = index < lengths.unsqueeze(1)
        return {"wave": _gather(wave, index, valid), "padding_mask": ~valid}


@AUGMENTATIONS.register("random_crop", modality="speech", description="random crop / masked pad to fixed seconds")
def random_crop(*, seconds: float = 1.0, sample_rate: int = 16000) -> RandomCrop:
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    return RandomCrop(int(round(seconds * sample_rate)))


@AUGMENTATIONS.register("gain", modality="speech", description="random gain in dB per utterance")
def gain(*, min_db: float = -6.0, max_db: float = 6.0, p: float = 1.0) -> AudioOp:
    def apply(x: Any) -> dict[str, Tensor]:
        wave, padding, _ = _start(x, "gain")
        db = torch.empty(wave.shape[0], device=wave.device).uniform_(min_db, max_db)
        db = torch.where(_chance(wave.shape[0], p, wave.device), db, torch.zeros_like(db))
        return {"wave": wave * (10 ** (db / 20)).unsqueeze(1), "padding_mask": padding}
    return apply


@AUGMENTATIONS.register("add_noise", modality="speech", description="white noise at a random SNR (dB)")
def add_noise(*, min_snr_db: float = 10.0, max_snr_db: float = 30.0, p: float = 0.5) -> AudioOp:
    """Noise power = signal power / 10^(SNR/10), signal power measured over the valid samples only."""

    def apply(x: Any) -> dict[str, Tensor]:
        wave, padding, lengths = _start(x, "add_noise")
        keep = (~padding).to(wave.dtype)
        power = (wave.pow(2) * keep).sum(dim=1) / lengths.clamp_min(1)
        snr = torch.empty(wave.shape[0], device=wave.device).uniform_(min_snr_db, max_snr_db)
        scale = (power / 10 ** (snr / 10)).sqrt() * _chance(wave.shape[0], p, wave.device)
        noise = torch.randn_like(wave) * scale.unsqueeze(1) * keep
        return {"wave": wave + noise, "padding_mask": padding}
    return apply


@AUGMENTATIONS.register("time_shift", modality="speech", description="circular shift within each utterance")
def time_shift(*, max_fraction: float = 0.2, p: float = 0.5) -> AudioOp:
    """Roll each utterance by up to ``max_fraction`` of its own length; padding stays where it was."""

    def apply(x: Any) -> dict[str, Tensor]:
        wave, padding, lengths = _start(x, "time_shift")
        b, device = wave.shape[0], wave.device
        shift = ((torch.rand(b, device=device) * 2 - 1) * max_fraction * lengths).long()
        shift = shift * _chance(b, p, device)
        t = torch.arange(wave.shape[1], device=device).unsqueeze(0)
        source = torch.remainder(t - shift.unsqueeze(1), lengths.clamp_min(1).unsqueeze(1))
        return {"wave": _gather(wave, source, ~padding), "padding_mask": padding}
    return apply


@AUGMENTATIONS.register("speed_perturb", modality="speech", description="speed change by resampling (tempo+pitch)")
def speed_perturb(*, min_factor: float = 0.9, max_factor: float = 1.1, p: float = 0.5) -> AudioOp:
    """Output sample t reads input position ``t·f`` (linear interpolation): length L becomes ⌊(L−1)/f⌋+1."""
    if not 0 < min_factor <= max_factor:
        raise ValueError(f"need 0 < min_factor ≤ max_factor, got {min_factor}, {max_factor}")

    def apply(x: Any) -> dict[str, Tensor]:
        wave, _, lengths = _start(x, "speed_perturb")
        b, device = wave.shape[0], wave.device
        factor = torch.empty(b, device=device).uniform_(min_factor, max_factor)
        factor = torch.where(_chance(b, p, device), factor, torch.ones_like(factor))
        new_lengths = ((lengths - 1).clamp_min(0) / factor).floor().long() + 1
        out_len = int(new_lengths.max())
        position = torch.arange(out_len, device=device).unsqueeze(0) * factor.unsqueeze(1)  # (B, T')
        valid = torch.arange(out_len, device=device).unsqueeze(0) < new_lengths.unsqueeze(1)
        left = position.floor().long()
        frac = (position - left).to(wave.dtype)
        last = (lengths - 1).unsqueeze(1)
        low = _gather(wave, left.clamp(max=last), valid)
        high = _gather(wave, (left + 1).clamp(max=last), valid)
        return {"wave": low + frac * (high - low), "padding_mask": ~valid}
    return apply


class SpecAugmentMasks:
    """Per utterance: ``num_time_masks`` spans of width ~U[0, min(max_width, max_fraction·L)] samples inside the
    valid region and ``num_freq_masks`` bands of width ~U[0, freq_width] of the mel axis (fractions)."""

    def __init__(self, *, num_time_masks: int, max_width: int, max_fraction: float, num_freq_masks: int,
                 freq_width: float) -> None:
        self.num_time_masks, self.max_width, self.max_fraction = num_time_masks, max_width, max_fraction
        self.num_freq_masks, self.freq_width = num_freq_masks, freq_width

    def __call__(self, x: Any) -> dict[str, Tensor]:
        wave, padding = as_audio(x)
        b, t, device = wave.shape[0], wave.shape[1], wave.device
        lengths = (~padding).sum(dim=1).float()
        time_mask = x.get("time_mask", torch.zeros_like(padding)) if isinstance(x, dict) else torch.zeros_like(padding)
        positions = torch.arange(t, device=device).unsqueeze(0)
        limit = torch.minimum(lengths * self.max_fraction, torch.full_like(lengths, float(self.max_width)))
        for _ in range(self.num_time_masks):
            width = (torch.rand(b, device=device) * (limit + 1)).floor().clamp(max=limit)
            start = (torch.rand(b, device=device) * (lengths - width + 1)).floor()
            time_mask = time_mask | ((positions >= start.unsqueeze(1)) & (positions < (start + width).unsqueeze(1)))
        width = torch.rand(b, self.num_freq_masks, device=device) * self.freq_width
        low = torch.rand(b, self.num_freq_masks, device=device) * (1 - width)
        bands = torch.stack([low, low + width], dim=-1)
        if isinstance(x, dict) and "freq_mask" in x:
            bands = torch.cat([x["freq_mask"], bands], dim=1)
        return {"wave": wave, "padding_mask": padding, "time_mask": time_mask & ~padding, "freq_mask": bands}


@AUGMENTATIONS.register("spec_augment", modality="speech", description="SpecAugment time/frequency masks (log-mel)")
def spec_augment(*, num_time_masks: int = 2, time_width_seconds: float = 0.1, max_time_fraction: float = 0.2,
                 num_freq_masks: int = 2, freq_width: float = 0.15, sample_rate: int = 16000) -> SpecAugmentMasks:
    """LibriSpeech-basic is T=100 frames (1 s), p=1.0, F=27 of 80 bins; defaults here suit 0.3–1 s clips."""
    if not 0 <= freq_width <= 1 or not 0 <= max_time_fraction <= 1:
        raise ValueError("freq_width and max_time_fraction are fractions in [0, 1]")
    return SpecAugmentMasks(num_time_masks=num_time_masks, max_width=int(math.floor(time_width_seconds * sample_rate)),
                            max_fraction=max_time_fraction, num_freq_masks=num_freq_masks, freq_width=freq_width)
