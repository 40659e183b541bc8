"""Log-mel front end (torchaudio) with padding-aware frame masks and SpecAugment masks applied in feature space.

Audio inputs are ``{"wave": (B, T) float, "padding_mask": (B, T) bool}`` (a bare ``(B, T)`` tensor means nothing is
padded). The ``spec_augment`` augmentation adds ``time_mask (B, T) bool`` in samples and ``freq_mask (B, K, 2)``
as [low, high) fractions of the mel axis, so masks do not depend on any one encoder's hop size or mel count; the
front end turns them into frame/bin masks (Park et al., 2019, "SpecAugment").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from omnissl.nn.transformer import masked_mean


def as_audio(x: Any) -> tuple[Tensor, Tensor]:
    """Modality input → ``wave (B, T)`` float32 and ``padding_mask (B, T)`` bool (True = padding)."""
    if isinstance(x, dict):
        wave = x["wave"].float()
        padding = x.get("padding_mask")
    else:
        wave, padding = x.float(), None
    if wave.ndim != 2:
        raise ValueError(f"audio input must be (B, T), got shape {tuple(wave.shape)}")
    if padding is None:
        padding = torch.zeros(wave.shape, dtype=torch.bool, device=wave.device)
    return wave, padding.bool()


class LogMel(nn.Module):
    """Waveform ``(B, T)`` → standardised log-mel ``(B, n_mels, F)`` and frame padding ``(B, F)``.

    Frames use ``center=True`` with zero (not reflect) edge padding, so a recording gives the same frames whether
    or not its batch pads it; frame f is centred on sample ``f·hop``; it is padding when that sample is
    beyond the recording. Each utterance is standardised by the mean/std of its valid log-mel values (one
    scalar each: loudness is removed, spectral shape — which carries speaker identity — is kept), and padded
    frames are set to 0. Computed in float32 with autocast off (STFTs are not AMP-safe).
    """

    def __init__(self, *, sample_rate: int, n_mels: int = 64, win_ms: float = 25.0, hop_ms: float = 10.0,
                 f_min: float = 20.0) -> None:
        super().__init__()
        import torchaudio

        win = int(round(sample_rate * win_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        n_fft = 1 << (win - 1).bit_length()
        self.n_mels = n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=win,
                                                        hop_length=self.hop, f_min=f_min, n_mels=n_mels,
                                                        power=2.0, center=True, pad_mode="constant")

    def frames(self, num_samples: int) -> int:
        return num_samples // self.hop + 1

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        wave, padding = as_audio(x)
        with torch.autocast(wave.device.type, enabled=False):
            spec = (self.mel(wave.float()) + 1e-6).log()  # (B, M, F)
        frame_samples = torch.arange(spec.shape[-1], device=wave.device) * self.hop
        lengths = (~padding).sum(dim=1)
        frame_pad = frame_samples.unsqueeze(0) >= lengths.unsqueeze(1)  # (B, F)
        keep = (~frame_pad).unsqueeze(1).float()
        count = (keep.sum(dim=(1, 2)) * spec.shape[1]).clamp_min(1.0)
        mean = (spec * keep).sum(dim=(1, 2)) / count
        var = (((spec - mean.view(-1, 1, 1)) * keep) ** 2).sum(dim=(1, 2)) / count
        spec = (spec - mean.view(-1, 1, 1)) / var.sqrt().clamp_min(1e-3).view(-1, 1, 1)
        spec = spec * keep
        if isinstance(x, dict):
            spec = self.apply_spec_masks(spec, x)
        return spec, frame_pad

    def apply_spec_masks(self, spec: Tensor, x: dict[str, Tensor]) -> Tensor:
        """Zero (= the utterance mean after standardising) the frames/bins the SpecAugment masks cover."""
        time_mask, freq_mask = x.get("time_mask"), x.get("freq_mask")
        if time_mask is not None:
            centres = (torch.arange(spec.shape[-1], device=spec.device) * self.hop).clamp(max=time_mask.shape[1] - 1)
            spec = spec.masked_fill(time_mask[:, centres].unsqueeze(1), 0.0)
        if freq_mask is not None:
            centre = (torch.arange(self.n_mels, device=spec.device, dtype=torch.float32) + 0.5) / self.n_mels
            low, high = freq_mask[..., 0:1], freq_mask[..., 1:2]  # (B, K, 1)
            hit = ((centre >= low) & (centre < high)).any(dim=1)  # (B, M)
            spec = spec.masked_fill(hit.unsqueeze(-1), 0.0)
        return spec


_FRONT_ENDS: dict[tuple[int, str], LogMel] = {}


@torch.no_grad()
def mean_log_mel(wave: Tensor, padding: Tensor, *, sample_rate: int, n_mels: int = 64) -> Tensor:
    """The raw-feature baseline: un-standardised log-mel averaged over valid frames → ``(B, n_mels)``."""
    key = (sample_rate, str(wave.device))
    if key not in _FRONT_ENDS:
        _FRONT_ENDS[key] = LogMel(sample_rate=sample_rate, n_mels=n_mels).to(wave.device)
    front = _FRONT_ENDS[key]
    spec = (front.mel(wave.float()) + 1e-6).log()
    frame_samples = torch.arange(spec.shape[-1], device=wave.device) * front.hop
    frame_pad = frame_samples.unsqueeze(0) >= (~padding).sum(dim=1, keepdim=True)
    return masked_mean(spec.transpose(1, 2), frame_pad)
