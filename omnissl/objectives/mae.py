"""MAE (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners"), generic over token sequences.

The modality's :class:`~omnissl.core.types.TokenEncoder` supplies ``tokenize(x) → (B, N, D)`` (positions added) and
``reconstruction_target(x) → (B, N, P)``. A random ``mask_ratio`` of the real tokens is dropped per sample; the
encoder runs on the visible ``(B, L ≈ (1 − ratio)·N, D)`` only — the source of MAE's compute saving — and a light
decoder with mask tokens predicts all ``(B, N, P)``. Loss: per-token mean squared error on masked positions only,
optionally against per-token normalised targets (``norm_target``, the paper's "norm pix" variant, §4 / Table 1e).
Paper defaults: ratio 0.75, decoder 8 blocks × 512-d; the paper's ablation shows 1 block works for fine-tuning.

Discrete tokens (text): an encoder with ``reconstruction_classes = V`` gives ids ``(B, N)`` as its target, and the
loss is the cross-entropy of the decoder's ``(M, V)`` logits at the ``M`` masked positions (``norm_target`` does
not apply). Unlike MLM, which feeds ``[MASK]`` tokens to the encoder, the encoder still sees the visible tokens
only. An encoder's ``always_visible_tokens(x) → (B, N) bool`` (text's special tokens) are never masked.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.errors import ConfigError, DataError
from omnissl.objectives._global_stats import global_log, masked_share
from omnissl.objectives.base import Objective
from omnissl.objectives.masking import MaskPlan, TokenDecoder, gather_tokens, random_masking
from omnissl.objectives.multiview import need_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import EncoderOutput, ObjectiveOutput, TokenEncoder, TokenSequence, ViewSet


def reconstruction_dim(encoder: TokenEncoder, given: int | None) -> int:
    """``P`` of ``reconstruction_target``: given, or the encoder's ``reconstruction_dim``, or patch²·channels."""
    if given is not None:
        return given
    if hasattr(encoder, "reconstruction_dim"):
        return int(encoder.reconstruction_dim)
    if hasattr(encoder, "patch_size") and hasattr(encoder, "in_channels"):
        return int(encoder.patch_size) ** 2 * int(encoder.in_channels)
    raise ConfigError(f"objective.target_dim: cannot tell the reconstruction size of {type(encoder).__name__}; "
                      f"give target_dim (P of reconstruction_target's (B, N, P))")


def masked_mse(prediction: Tensor, target: Tensor, masked: Tensor, *, norm_target: bool) -> Tensor:
    """Mean over masked tokens of the per-token MSE; ``prediction, target (B, N, P)``, ``masked (B, N)`` bool."""
    target = target.float()
    if norm_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_token = (prediction.float() - target).pow(2).mean(dim=-1)
    weight = masked.float()
    # ranks mask different numbers of tokens (padding): each rank's share of the global masked-token mean
    return masked_share((per_token * weight).sum(), weight.sum())


def masked_token_ce(logits: Tensor, ids: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits (M, V)`` against ``ids (M,)``; 0 (not NaN) when nothing is masked."""
    total = F.cross_entropy(logits.float(), ids, reduction="sum")
    return masked_share(total, torch.tensor(float(ids.numel()), device=logits.device))


def pinned_tokens(encoder: TokenEncoder, x: Any) -> Tensor | None:
    """The encoder's ``always_visible_tokens(x)`` ``(B, N)`` bool (text's specials), or ``None`` (images, speech)."""
    pinned = getattr(encoder, "always_visible_tokens", None)
    return None if pinned is None else pinned(x)


def encode_visible(encoder: TokenEncoder, sequence: TokenSequence, *, ratio: float,
                   always_visible: Tensor | None = None) -> tuple[EncoderOutput, MaskPlan]:
    """Mask ``sequence`` at ``ratio`` (never the ``always_visible`` tokens) and run ``encoder`` on the visible
    tokens only."""
    tokens = sequence.tokens
    batch, length = tokens.shape[:2]
    plan = random_masking(batch, length, ratio=ratio, padding_mask=sequence.padding_mask, device=tokens.device,
                          always_visible=always_visible)
    visible = gather_tokens(tokens, plan.ids_keep)
    if plan.keep_padding is not None:
        visible = visible.masked_fill(plan.keep_padding.unsqueeze(-1), 0.0)
    return encoder.encode_tokens(TokenSequence(tokens=visible, padding_mask=plan.keep_padding)), plan


class MAE(Objective):
    requires = "tokens"

    def __init__(self, encoder: TokenEncoder, *, mask_ratio: float, decoder_dim: int, decoder_depth: int,
                 decoder_heads: int, norm_target: bool, target_dim: int | None) -> None:
        super().__init__(encoder)
        self.mask_ratio, self.norm_target = mask_ratio, norm_target
        self.classes: int | None = getattr(encoder, "reconstruction_classes", None)
        if self.classes is not None and target_dim is not None and target_dim != self.classes:
            raise ConfigError(f"objective.target_dim: {type(encoder).__name__} predicts {self.classes} token classes, "
                              f"got target_dim {target_dim}; leave it out")
        out_dim = self.classes if self.classes is not None else reconstruction_dim(encoder, target_dim)
        self.decoder = TokenDecoder(in_dim=encoder.embed_dim, dim=decoder_dim, depth=decoder_depth,
                                    heads=decoder_heads, out_dim=out_dim)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "MAE")
        x = views.global_views[0]
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        sequence = encoder.tokenize(x)
        target = encoder.reconstruction_target(x)
        if target.shape[:2] != sequence.tokens.shape[:2]:
            raise DataError(f"reconstruction_target gives {tuple(target.shape)} but tokenize gives "
                            f"{tuple(sequence.tokens.shape)}: (B, N) must match")
        out, plan = encode_visible(encoder, sequence, ratio=self.mask_ratio, always_visible=pinned_tokens(encoder, x))
        if out.tokens is None:
            raise ConfigError(f"encoder {type(encoder).__name__} returned no tokens from encode_tokens")
        if self.classes is not None:
            return self.token_classes(out, plan, target, sequence)
        prediction = self.decoder(out.tokens, plan, length=sequence.tokens.shape[1],
                                  padding_mask=sequence.padding_mask)
        if prediction.shape[-1] != target.shape[-1]:
            raise ConfigError(f"objective.target_dim: decoder predicts {prediction.shape[-1]} values per token, "
                              f"the target has {target.shape[-1]}")
        loss = masked_mse(prediction, target, plan.masked, norm_target=self.norm_target)
        return ObjectiveOutput(loss=loss, embeddings=out.pooled.detach(),
                               logs={"masked_mse": global_log(loss), "visible_tokens": float(out.tokens.shape[1])})

    def token_classes(self, out: EncoderOutput, plan: MaskPlan, ids: Tensor, sequence: TokenSequence) -> ObjectiveOutput:
        """Discrete targets: ``ids (B, N)``; vocabulary logits only at the ``M`` masked positions ``(M, V)``."""
        assert out.tokens is not None
        if ids.dim() != 2 or ids.is_floating_point():
            raise DataError(f"reconstruction_target of {type(self.encoder).__name__} must be (B, N) integer ids "
                            f"for reconstruction_classes, got {tuple(ids.shape)} {ids.dtype}")
        states = self.decoder.features(out.tokens, plan, length=sequence.tokens.shape[1],
                                       padding_mask=sequence.padding_mask)
        logits = self.decoder.out(states[plan.masked]).float()
        targets = ids[plan.masked]
        loss = masked_token_ce(logits, targets)
        accuracy = masked_share((logits.argmax(dim=1) == targets).float().sum(), plan.masked.float().sum())
        return ObjectiveOutput(loss=loss, embeddings=out.pooled.detach(),
                               logs={"masked_ce": global_log(loss), "masked_accuracy": global_log(accuracy),
                                     "visible_tokens": float(out.tokens.shape[1])})


@OBJECTIVES.register("mae", description="MAE: encode visible tokens only, reconstruct masked ones (He et al., 2022)")
def build_mae(*, encoder: TokenEncoder, mask_ratio: float = 0.75, decoder_dim: int = 512, decoder_depth: int = 8,
              decoder_heads: int = 16, norm_target: bool = True, target_dim: int | None = None) -> MAE:
    """Paper defaults: mask ratio 0.75, decoder 8 × 512-d (16 heads), normalised per-patch pixel targets."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"objective.mask_ratio: must be in [0, 1), got {mask_ratio}")
    return MAE(encoder, mask_ratio=mask_ratio, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
               decoder_heads=decoder_heads, norm_target=norm_target, target_dim=target_dim)
