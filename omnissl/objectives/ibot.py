"""iBOT (Zhou et al., 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer"), over any token encoder.

Masked image modelling as self-distillation: the EMA teacher (the "online tokenizer") sees each full global view,
the student the same view with a random subset of patch tokens replaced by a learned mask token (plus the
position the token had: the masked slot is the tokenisation of a blank input at that position + the mask token, so
it works for any :class:`~omnissl.core.types.TokenEncoder` that adds positions in ``tokenize``). One head (iBOT's
shared head, §3.2) maps ``(…, D)`` encoder outputs to ``K`` prototype scores.

For global views ``u, v`` with teacher outputs ``t`` and student outputs ``s``:

- patch loss (MIM): ``L_MIM = −Σ_{j masked} softmax((t_j − c')/τ'_t) · log softmax(s_j/τ_s) / #masked``,
  per image over its masked tokens ``(B, N, K)``, then the mean over images (unmasked images add 0, as in the
  reference code) and over the two views;
- CLS loss: DINO's cross-view ``H(t_cls(u), s_cls(v))`` on the pooled outputs ``(B, K)`` (student pooled from its
  masked view), weighted by ``cls_weight`` (0 turns it off: DINOv2 composes it with a separate ``dino`` term).

Masking (iBOT §4.1 / DINOv2): each image is masked with probability ``mask_probability`` (0.5), at a ratio drawn
uniformly from ``mask_ratio`` (0.1–0.5) per image, tokens chosen independently (iBOT also offers block masking;
random patch masking is its "rand" variant, Table 8). Centres ``c (1, K)`` and ``c' (1, K)`` are EMA means
(momentum 0.9) of the teacher's CLS and patch outputs over the global batch; τ_s = 0.1, τ_t = τ'_t = 0.04 (iBOT
warms τ'_t up to 0.07), teacher momentum cosine 0.996 → 1. Paper: K = 8192, ViT-S/16 … ViT-L/16.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import ConfigError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, EncoderOutput, ObjectiveOutput, TokenEncoder, TokenSequence, ViewSet
from omnissl.objectives._global_stats import batch_mean_nograd, global_log, sample_mean, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.dino import dino_cross_entropy, teacher_temperature
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.heads import DINOHead
from omnissl.objectives.multiview import need_views


def draw_patch_mask(batch: int, length: int, *, ratio: tuple[float, float], probability: float,
                    device: torch.device) -> Tensor:
    """``(B, N)`` bool, True = masked: image b is masked with ``probability`` at a ratio ~ U(ratio) per image."""
    low, high = ratio
    per_image = low + (high - low) * torch.rand(batch, device=device)
    chosen = torch.rand(batch, device=device) < probability
    return (torch.rand(batch, length, device=device) < per_image.unsqueeze(1)) & chosen.unsqueeze(1)


def masked_patch_distillation(teacher: Tensor, student: Tensor, mask: Tensor, center: Tensor, *,
                              teacher_temp: float, student_temp: float) -> Tensor:
    """iBOT's MIM loss for one view: ``teacher, student (B, N, K)``, ``mask (B, N)``; the mean over images of
    each image's mean over its masked tokens of ``−Σ_k q log p`` (an image with no masked token gives 0)."""
    q = F.softmax((teacher.detach().float() - center) / teacher_temp, dim=-1)
    log_p = F.log_softmax(student.float() / student_temp, dim=-1)
    per_token = -(q * log_p).sum(dim=-1)
    weight = mask.float()
    per_image = (per_token * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1.0)
    return sample_mean(per_image)


class IBOT(Objective):
    requires = "tokens"

    def __init__(self, encoder: TokenEncoder, *, out_dim: int, hidden_dim: int, bottleneck_dim: int,
                 mask_ratio: tuple[float, float], mask_probability: float, cls_weight: float, student_temp: float,
                 teacher_temp: float, teacher_patch_temp: float, warmup_teacher_patch_temp: float,
                 warmup_teacher_steps: int, center_momentum: float, momentum: float, momentum_end: float,
                 evaluate: Literal["teacher", "student"]) -> None:
        super().__init__(encoder)
        self.mask_ratio, self.mask_probability, self.cls_weight = mask_ratio, mask_probability, cls_weight
        self.student_temp, self.teacher_temp, self.teacher_patch_temp = student_temp, teacher_temp, teacher_patch_temp
        self.warmup_teacher_patch_temp, self.warmup_teacher_steps = warmup_teacher_patch_temp, warmup_teacher_steps
        self.center_momentum, self.evaluate = center_momentum, evaluate
        self.ema = MomentumSchedule(base=momentum, final=momentum_end)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = DINOHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim,
                             out_dim=out_dim)
        self.teacher_encoder = make_teacher(encoder)
        self.teacher_head = make_teacher(self.head)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("center_patch", torch.zeros(1, out_dim))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    @property
    def towers(self) -> dict[str, Encoder]:
        return {self.tower_name: self.teacher_encoder if self.evaluate == "teacher" else self.encoder}  # type: ignore[dict-item]

    def masked_sequence(self, x: Tensor, sequence: TokenSequence, mask: Tensor) -> TokenSequence:
        """``sequence`` with masked slots replaced by (blank input's token at that position) + mask token."""
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        blank = encoder.tokenize(torch.zeros_like(x)).tokens if isinstance(x, Tensor) else 0.0
        filler = blank + self.mask_token.to(sequence.tokens.dtype)
        tokens = torch.where(mask.unsqueeze(-1), filler, sequence.tokens)
        return TokenSequence(tokens=tokens, padding_mask=sequence.padding_mask)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "iBOT")
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        teacher: TokenEncoder = self.teacher_encoder  # type: ignore[assignment]
        step = int(self.steps_done)
        patch_temp = teacher_temperature(step, warmup=self.warmup_teacher_patch_temp, final=self.teacher_patch_temp,
                                         warmup_steps=self.warmup_teacher_steps)
        teacher_cls: list[Tensor] = []
        student_cls: list[Tensor] = []
        patch_losses, teacher_patches, masked_share = [], [], []
        first_pooled: Tensor | None = None
        for x in views.global_views[:2]:
            with torch.no_grad():
                t_out: EncoderOutput = teacher.encode_tokens(teacher.tokenize(x))
                assert t_out.tokens is not None
                t_patch = self.teacher_head(t_out.tokens)
                teacher_cls.append(self.teacher_head(t_out.pooled))
            sequence = encoder.tokenize(x)
            batch, length = sequence.tokens.shape[:2]
            mask = draw_patch_mask(batch, length, ratio=self.mask_ratio, probability=self.mask_probability,
                                   device=sequence.tokens.device)
            if sequence.padding_mask is not None:
                mask = mask & ~sequence.padding_mask
            s_out = encoder.encode_tokens(self.masked_sequence(x, sequence, mask))
            if s_out.tokens is None or s_out.tokens.shape[:2] != mask.shape:
                raise ConfigError(f"iBOT: encoder {type(encoder).__name__} must return one token per input token")
            s_patch = self.head(s_out.tokens)
            first_pooled = s_out.pooled.detach() if not student_cls else first_pooled
            student_cls.append(self.head(s_out.pooled))
            patch_losses.append(masked_patch_distillation(t_patch, s_patch, mask, self.center_patch,
                                                          teacher_temp=patch_temp, student_temp=self.student_temp))
            teacher_patches.append(t_patch.float().mean(dim=1))
            masked_share.append(token_mean(mask.float()))
        patch_loss = sum(patch_losses) / len(patch_losses)
        cls_loss = dino_cross_entropy(teacher_cls, student_cls, self.center, teacher_temp=self.teacher_temp,
                                      student_temp=self.student_temp)
        loss = patch_loss + self.cls_weight * cls_loss if self.cls_weight else patch_loss
        if self.training:
            with torch.no_grad():
                m = self.center_momentum
                self.center.mul_(m).add_(batch_mean_nograd(torch.cat(teacher_cls).float()), alpha=1 - m)
                self.center_patch.mul_(m).add_(batch_mean_nograd(torch.cat(teacher_patches)), alpha=1 - m)
        return ObjectiveOutput(loss=loss, embeddings=first_pooled,
                               logs={"mim_ce": global_log(patch_loss), "cls_ce": global_log(cls_loss),
                                     "masked_fraction": global_log(sum(masked_share) / len(masked_share)),
                                     "teacher_patch_temp": patch_temp, "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.steps_done.fill_(step + 1)
        self.ema.update([(self.teacher_encoder, self.encoder), (self.teacher_head, self.head)], step=step,
                        total_steps=total_steps)


@OBJECTIVES.register("ibot", description="iBOT: masked patch-token + CLS self-distillation from an EMA teacher (Zhou et al., 2022)")
def build_ibot(*, encoder: TokenEncoder, out_dim: int = 8192, hidden_dim: int = 2048, bottleneck_dim: int = 256,
               mask_ratio: tuple[float, float] = (0.1, 0.5), mask_probability: float = 0.5, cls_weight: float = 1.0,
               student_temp: float = 0.1, teacher_temp: float = 0.04, teacher_patch_temp: float = 0.07,
               warmup_teacher_patch_temp: float = 0.04, warmup_teacher_steps: int = 0,
               center_momentum: float = 0.9, momentum: float = 0.996, momentum_end: float = 1.0,
               evaluate: Literal["teacher", "student"] = "teacher") -> IBOT:
    """Paper defaults (ViT-S/16): K = 8192 shared head, mask ratio U(0.1, 0.5) on half the images, τ_s 0.1,
    τ_t 0.04, patch τ'_t 0.04 → 0.07 (warm-up over 30 epochs), centre momentum 0.9, teacher 0.996 → 1."""
    low, high = mask_ratio
    if not 0.0 <= low <= high < 1.0:
        raise ConfigError(f"objective.mask_ratio: expected [low, high] with 0 ≤ low ≤ high < 1, got {list(mask_ratio)}")
    if not 0.0 <= mask_probability <= 1.0:
        raise ConfigError(f"objective.mask_probability: must be in [0, 1], got {mask_probability}")
    return IBOT(encoder, out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim,
                mask_ratio=(low, high), mask_probability=mask_probability, cls_weight=cls_weight,
                student_temp=student_temp, teacher_temp=teacher_temp, teacher_patch_temp=teacher_patch_temp,
                warmup_teacher_patch_temp=warmup_teacher_patch_temp, warmup_teacher_steps=warmup_teacher_steps,
                center_momentum=center_momentum, momentum=momentum, momentum_end=momentum_end, evaluate=evaluate)
