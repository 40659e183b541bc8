"""Random token masking and a light transformer decoder shared by MAE and data2vec, for any TokenEncoder.

Padding-aware: only real tokens (``padding_mask == False``) are ever kept or masked; each sample keeps
``floor((1 − ratio)·n_valid)`` tokens (at least one), so samples of different lengths get different counts and
the visible subset is right-padded to the longest, with its own padding mask for the encoder. Variable-length
padded batches (text, speech) work as they come: nothing assumes a fixed token count N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from omnissl.core.errors import ConfigError


@dataclass
class MaskPlan:
    """ids_keep ``(B, L)`` positions of the visible tokens; keep_padding ``(B, L)`` True on filler slots (or None
    when every sample keeps L); masked ``(B, N)`` True on real tokens hidden from the encoder."""

    ids_keep: Tensor
    keep_padding: Tensor | None
    masked: Tensor


def random_masking(batch: int, length: int, *, ratio: float, padding_mask: Tensor | None,
                   device: torch.device, always_visible: Tensor | None = None) -> MaskPlan:
    """Per-sample uniform random masking (MAE §3: shuffle, keep the first ``(1 − ratio)·N``).

    ``always_visible (B, N)`` bool (e.g. text's ``[CLS]``/``[SEP]``, which BERT never masks either): those real
    tokens are always kept, first and in their order (so a CLS pool still reads ``[CLS]``), and the ratio applies
    to the other real tokens: keep ``n_always + floor((1 − ratio)·n_other)``. ``None`` is the plain masking.
    """
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"objective.mask_ratio: must be in [0, 1), got {ratio}")
    valid = torch.ones(batch, length, dtype=torch.bool, device=device) if padding_mask is None else ~padding_mask
    n_valid = valid.sum(dim=1)
    if always_visible is None:
        n_keep = torch.floor(n_valid.float() * (1 - ratio)).long().clamp_min(1).minimum(n_valid.clamp_min(1))
        noise = torch.rand(batch, length, device=device)
    else:
        if always_visible.shape != (batch, length):
            raise ValueError(f"always_visible has shape {tuple(always_visible.shape)}, tokens ({batch}, {length})")
        pinned = always_visible.to(device) & valid
        n_free = (valid & ~pinned).sum(dim=1)
        n_keep = (pinned.sum(dim=1) + torch.floor(n_free.float() * (1 - ratio)).long())
        n_keep = n_keep.clamp_min(1).minimum(n_valid.clamp_min(1))
        order = torch.arange(length, device=device, dtype=torch.float32) / length - 2.0  # in [-2, -1): sorts first
        noise = torch.where(pinned, order.expand(batch, -1), torch.rand(batch, length, device=device))
    noise = noise.masked_fill(~valid, 2.0)  # padding sorts last, so it is never kept
    ids_keep = noise.argsort(dim=1)[:, : int(n_keep.max())]
    slots = torch.arange(ids_keep.shape[1], device=device).unsqueeze(0)
    keep_padding = slots >= n_keep.unsqueeze(1)
    visible = torch.zeros(batch, length, dtype=torch.bool, device=device)
    visible.scatter_(1, ids_keep, ~keep_padding)
    return MaskPlan(ids_keep=ids_keep, keep_padding=keep_padding if bool(keep_padding.any()) else None,
                    masked=valid & ~visible)


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """``tokens (B, N, D)``, ``ids (B, L)`` → ``(B, L, D)``."""
    return tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def sincos_positions(length: int, dim: int, *, device: torch.device) -> Tensor:
    """Fixed 1-D sine-cosine positions ``(length, dim)`` (Vaswani et al., 2017) — the decoder works for any N."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / max(1, half)))
    table = torch.zeros(length, dim, device=device)
    table[:, 0:2 * half:2] = torch.sin(position * freq)
    table[:, 1:2 * half:2] = torch.cos(position * freq)
    return table


class TokenDecoder(nn.Module):
    """MAE-style light decoder: visible encodings + learned mask tokens at the hidden positions → ``(B, N, out)``.

    visible ``(B, L, in_dim)`` at positions ``plan.ids_keep`` → linear to ``dim`` → scattered into a length-N
    sequence of mask tokens → + sine-cosine positions → ``depth`` transformer blocks → linear to ``out_dim``.
    """

    def __init__(self, *, in_dim: int, dim: int, depth: int, heads: int, out_dim: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"objective.decoder_dim {dim} is not divisible by decoder_heads {heads}")
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), 0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, visible: Tensor, plan: MaskPlan, *, length: int, padding_mask: Tensor | None) -> Tensor:
        return self.out(self.features(visible, plan, length=length, padding_mask=padding_mask))

    def features(self, visible: Tensor, plan: MaskPlan, *, length: int, padding_mask: Tensor | None) -> Tensor:
        """The normalised decoder states ``(B, N, dim)`` before ``out``: a vocabulary-sized ``out`` (text MAE) is
        then applied to the masked positions only, not to all ``B·N``."""
        x = self.embed(visible)
        batch, _, dim = x.shape
        # Filler slots write to an extra position N that is dropped afterwards.
        ids = plan.ids_keep if plan.keep_padding is None else plan.ids_keep.masked_fill(plan.keep_padding, length)
        full = self.mask_token.to(x.dtype).expand(batch, length + 1, dim)
        full = full.scatter(1, ids.unsqueeze(-1).expand(-1, -1, dim), x)[:, :length]
        full = full + sincos_positions(length, dim, device=x.device).to(full.dtype)
        for block in self.blocks:
            full = block(full, src_key_padding_mask=padding_mask)
        return self.norm(full)
