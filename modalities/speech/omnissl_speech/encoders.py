"""Speech encoders: a wav2vec 2.0-style HF model, a spectrogram-patch transformer (Audio-MAE style) and a log-mel
frame CNN. All take the raw audio batch ``{"wave": (B, T), "padding_mask": (B, T)}`` and mean-pool over valid
steps, so evaluation needs no augmentation and padding never leaks into an utterance embedding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from omnissl.core.registry import ENCODERS
from omnissl.nn.transformer import TransformerTrunk, masked_mean
from omnissl.core.types import Encoder, EncoderOutput, TokenEncoder, TokenSequence
from omnissl_speech.features import LogMel, as_audio


class Wav2Vec2Encoder(Encoder):
    """wav2vec 2.0 (Baevski et al., 2020): conv feature encoder over the waveform + transformer context network,
    built from HF ``Wav2Vec2Config``/``Wav2Vec2Model`` with random init.

    Input ``(B, T)`` samples → tokens ``(B, F, hidden)`` with ``F`` from the conv strides (160× here: 20 ms at
    8 kHz), pooled ``(B, hidden)`` = mean over valid frames. Layer-norm conv blocks (the "large" variant) so
    padding can be masked instead of leaking into a GroupNorm over time. HF's own random SpecAugment is off;
    the wav2vec 2.0 objective passes its own ``mask_time_indices``.
    """

    output_kinds = frozenset({"pooled", "tokens"})

    def __init__(self, *, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int,
                 conv_dim: int, conv_kernel: tuple[int, ...], conv_stride: tuple[int, ...], pos_conv_kernel: int,
                 codevector_dim: int, num_codevector_groups: int, num_codevectors_per_group: int) -> None:
        super().__init__()
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        if len(conv_kernel) != len(conv_stride):
            raise ValueError(f"conv_kernel {conv_kernel} and conv_stride {conv_stride} differ in length")
        self.config = Wav2Vec2Config(
            hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
            intermediate_size=intermediate_size, conv_dim=(conv_dim,) * len(conv_kernel), conv_kernel=conv_kernel,
            conv_stride=conv_stride, feat_extract_norm="layer", do_stable_layer_norm=True,
            num_conv_pos_embeddings=pos_conv_kernel, num_conv_pos_embedding_groups=min(16, hidden_size // 8),
            apply_spec_augment=True, mask_time_prob=0.0, mask_feature_prob=0.0, layerdrop=0.0,
            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
            codevector_dim=codevector_dim, proj_codevector_dim=codevector_dim,
            num_codevector_groups=num_codevector_groups, num_codevectors_per_group=num_codevectors_per_group)
        self.model = Wav2Vec2Model(self.config)
        # HF only creates the mask embedding when its own random masking is on (mask_time_prob > 0); we keep
        # that off and pass explicit spans, so create it the way HF does.
        self.model.masked_spec_embed = nn.Parameter(torch.empty(hidden_size).uniform_())
        self.embed_dim = hidden_size

    def prepare(self, x: Any) -> tuple[Tensor, Tensor, Tensor]:
        """``input_values (B, T)`` standardised per utterance over valid samples (zeros in padding),
        ``attention_mask (B, T)`` long (1 = valid) and the frame padding mask ``(B, F)`` bool."""
        wave, padding = as_audio(x)
        keep = (~padding).float()
        count = keep.sum(dim=1, keepdim=True).clamp_min(1.0)
        mean = (wave * keep).sum(dim=1, keepdim=True) / count
        std = ((((wave - mean) * keep) ** 2).sum(dim=1, keepdim=True) / count).sqrt().clamp_min(1e-5)
        values = (wave - mean) / std * keep
        lengths = self.model._get_feat_extract_output_lengths(keep.sum(dim=1).long())
        frames = int(self.model._get_feat_extract_output_lengths(torch.tensor(wave.shape[1])))
        if int(lengths.min()) < 1:
            raise ValueError(f"an utterance of {int(keep.sum(dim=1).min())} samples is shorter than one "
                             f"wav2vec 2.0 frame; pad or crop audio to at least the receptive field")
        frame_pad = torch.arange(frames, device=wave.device).unsqueeze(0) >= lengths.unsqueeze(1)
        return values, keep.long(), frame_pad

    def run(self, x: Any, *, mask_time_indices: Tensor | None = None) -> tuple[Any, Tensor]:
        values, attention, frame_pad = self.prepare(x)
        outputs = self.model(values, attention_mask=attention, mask_time_indices=mask_time_indices)
        return outputs, frame_pad

    def forward(self, x: Any) -> EncoderOutput:
        outputs, frame_pad = self.run(x)
        tokens = outputs.last_hidden_state
        return EncoderOutput(pooled=masked_mean(tokens, frame_pad), tokens=tokens, padding_mask=frame_pad)


@ENCODERS.register("wav2vec2", modality="speech", description="wav2vec 2.0-style conv+transformer (HF, random init)")
def build_wav2vec2(*, hidden_size: int = 128, num_layers: int = 4, num_heads: int = 4, intermediate_size: int = 512,
                   conv_dim: int = 128, conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2),
                   conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2), pos_conv_kernel: int = 16,
                   codevector_dim: int = 128, num_codevector_groups: int = 2,
                   num_codevectors_per_group: int = 64) -> Encoder:
    """Paper BASE: hidden 768, 12 layers, 512-channel 7-layer conv (stride 320), G=2, V=320. Defaults are a
    CPU-sized version with stride 160 (20 ms frames at 8 kHz, FSDD's rate)."""
    return Wav2Vec2Encoder(hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                           intermediate_size=intermediate_size, conv_dim=conv_dim, conv_kernel=conv_kernel,
                           conv_stride=conv_stride, pos_conv_kernel=pos_conv_kernel, codevector_dim=codevector_dim,
                           num_codevector_groups=num_codevector_groups,
                           num_codevectors_per_group=num_codevectors_per_group)


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """Transformer sine/cosine position codes (Vaswani et al., 2017): ``positions (N,)`` → ``(N, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class SpectrogramTransformer(TokenEncoder):
    """Spectrogram-patch transformer (Audio-MAE, Huang et al., 2022; AST, Gong et al., 2021).

    Log-mel ``(B, M, F)`` is cut into ``freq_patch × time_patch`` patches in time-major order: token
    ``n = t·(M/freq_patch) + f`` — ``N = ⌈F/time_patch⌉ · M/freq_patch``. Positions: a learned code per
    frequency band plus sine codes over time (any utterance length). A time patch is padding when all its frames
    are padding. ``reconstruction_target`` is the standardised log-mel patch ``(B, N, freq_patch·time_patch)``.
    """

    def __init__(self, *, sample_rate: int, n_mels: int, freq_patch: int, time_patch: int, dim: int, depth: int,
                 heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if n_mels % freq_patch:
            raise ValueError(f"n_mels {n_mels} is not a multiple of freq_patch {freq_patch}")
        self.front = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.freq_patch, self.time_patch = freq_patch, time_patch
        self.bands = n_mels // freq_patch
        self.embed_dim = dim
        self.reconstruction_dim = freq_patch * time_patch  # read by the core MAE for its decoder's output size
        self.patch_embed = nn.Linear(freq_patch * time_patch, dim)
        self.band_position = nn.Parameter(torch.zeros(1, 1, self.bands, dim))
        self.trunk = TransformerTrunk(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, dropout=dropout,
                                      pool="mean")
        nn.init.trunc_normal_(self.band_position, std=0.02)

    def patches(self, x: Any) -> tuple[Tensor, Tensor]:
        """→ ``patches (B, N, freq_patch·time_patch)`` and ``padding (B, N)``."""
        spec, frame_pad = self.front(x)
        b, m, f = spec.shape
        extra = (-f) % self.time_patch
        if extra:
            spec = nn.functional.pad(spec, (0, extra))
            frame_pad = nn.functional.pad(frame_pad, (0, extra), value=True)
        steps = spec.shape[-1] // self.time_patch
        patches = spec.reshape(b, self.bands, self.freq_patch, steps, self.time_patch)
        patches = patches.permute(0, 3, 1, 2, 4).reshape(b, steps * self.bands, self.freq_patch * self.time_patch)
        step_pad = frame_pad.reshape(b, steps, self.time_patch).all(dim=2)
        return patches, step_pad.repeat_interleave(self.bands, dim=1)

    def tokenize(self, x: Any) -> TokenSequence:
        patches, padding = self.patches(x)
        b, n, _ = patches.shape
        steps = n // self.bands
        tokens = self.patch_embed(patches).view(b, steps, self.bands, -1)
        time_code = sinusoid(torch.arange(steps, device=patches.device), self.embed_dim).to(tokens.dtype)
        tokens = tokens + self.band_position + time_code.view(1, steps, 1, -1)
        return TokenSequence(tokens=tokens.reshape(b, n, -1), padding_mask=padding)

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        padding = sequence.padding_mask
        if padding is not None and bool(padding.all(dim=1).any()):
            raise ValueError("an utterance has no valid token: every patch is padding")
        return self.trunk(sequence, return_hidden_states=return_hidden_states)

    def reconstruction_target(self, x: Any) -> Tensor:
        return self.patches(x)[0]


@ENCODERS.register("spec_transformer", modality="speech",
                   description="log-mel patch transformer with token outputs (Audio-MAE / data2vec)")
def build_spec_transformer(*, sample_rate: int = 16000, n_mels: int = 64, freq_patch: int = 16, time_patch: int = 4,
                           dim: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0,
                           dropout: float = 0.0) -> Encoder:
    """Audio-MAE uses 128 mels × 1024 frames in 16×16 patches with ViT-B; defaults are CPU-sized for short clips."""
    return SpectrogramTransformer(sample_rate=sample_rate, n_mels=n_mels, freq_patch=freq_patch,
                                  time_patch=time_patch, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                                  dropout=dropout)


class MelFrameCNN(TokenEncoder):
    """Log-mel frames → 1-D conv stack (kernel 5, same length) → per-frame tokens ``(B, F, dim)``.

    ``causal=True`` pads on the left only, so token t sees frames ≤ t: CPC must not see the future it predicts.

    The frame encoder ``g_enc`` of CPC (van den Oord et al., 2018) on log-mel instead of raw samples; it is a
    TokenEncoder whose ``encode_tokens`` only normalises, so sequence objectives see one token per 10 ms frame.
    ``reconstruction_target`` is the standardised log-mel frame ``(B, F, n_mels)``.
    """

    def __init__(self, *, sample_rate: int, n_mels: int, dim: int, depth: int, causal: bool) -> None:
        super().__init__()
        self.front = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.pad = (4, 0) if causal else (2, 2)
        # Per-frame LayerNorm, not GroupNorm over time, and padded frames re-zeroed after every layer: an
        # utterance's features must not depend on how much padding its batch-mates force on it.
        self.convs = nn.ModuleList([nn.Conv1d(n_mels if i == 0 else dim, dim, 5) for i in range(depth)])
        self.conv_norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.embed_dim = dim
        self.reconstruction_dim = n_mels

    def tokenize(self, x: Any) -> TokenSequence:
        spec, frame_pad = self.front(x)
        keep = (~frame_pad).unsqueeze(-1).to(spec.dtype)
        features = spec.transpose(1, 2)  # (B, F, M)
        for conv, norm in zip(self.convs, self.conv_norms):
            padded = nn.functional.pad(features.transpose(1, 2), self.pad)
            features = nn.functional.gelu(norm(conv(padded).transpose(1, 2))) * keep
        return TokenSequence(tokens=features, padding_mask=frame_pad)

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        tokens = self.norm(sequence.tokens)
        return EncoderOutput(pooled=masked_mean(tokens, sequence.padding_mask), tokens=tokens,
                             padding_mask=sequence.padding_mask,
                             hidden_states=[tokens] if return_hidden_states else None)

    def reconstruction_target(self, x: Any) -> Tensor:
        return self.front(x)[0].transpose(1, 2)


@ENCODERS.register("mel_cnn", modality="speech", description="log-mel frame CNN, one token per 10 ms (CPC)")
def build_mel_cnn(*, sample_rate: int = 16000, n_mels: int = 64, dim: int = 128, depth: int = 3,
                  causal: bool = True) -> Encoder:
    return MelFrameCNN(sample_rate=sample_rate, n_mels=n_mels, dim=dim, depth=depth, causal=causal)
