"""data2vec (Baevski et al., 2022, "data2vec: A General Framework for Self-supervised Learning in Speech, Vision
and Language"), generic over token sequences.

Teacher = EMA copy of the encoder; it encodes the full, unmasked sequence and the target of each token is the
average of its top-K block outputs, each normalised by a parameter-less layer norm (§3.3): ``y (B, N, D)``.
Student: the same tokens with a ``mask_ratio`` fraction hidden; as in data2vec 2.0 (Baevski et al., 2023) the
student encoder sees only the visible tokens and a light decoder with mask tokens predicts ``y`` at every
position. Loss: mean squared error (``loss_beta = 0``) or Smooth-L1 with β on masked positions only.
Teacher momentum rises linearly from τ0 = 0.999 to τe = 0.9999 over the run (§3.3).
Variable-length padded batches (text, speech): padding is never masked nor scored, and an encoder's
``always_visible_tokens(x)`` (text's special tokens, which BERT never masks either) are kept visible.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.errors import ConfigError
from omnissl.objectives._global_stats import global_log, masked_share
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.mae import encode_visible, pinned_tokens
from omnissl.objectives.masking import TokenDecoder
from omnissl.objectives.multiview import need_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import ObjectiveOutput, TokenEncoder, ViewSet


def layer_average_target(hidden_states: list[Tensor], *, top_k: int) -> Tensor:
    """Average of parameter-less ``layer_norm`` of the last ``top_k`` ``(B, N, D)`` block outputs, float32."""
    if top_k < 1 or top_k > len(hidden_states):
        raise ConfigError(f"objective.top_k: must be in 1..{len(hidden_states)} (encoder depth), got {top_k}")
    layers = [F.layer_norm(h.float(), h.shape[-1:]) for h in hidden_states[-top_k:]]
    return torch.stack(layers).mean(dim=0)


def masked_regression(prediction: Tensor, target: Tensor, masked: Tensor, *, beta: float) -> Tensor:
    """Mean over masked tokens of the per-token loss (MSE summed over D / D, or Smooth-L1 with ``beta``)."""
    if beta > 0:
        per_token = F.smooth_l1_loss(prediction.float(), target, reduction="none", beta=beta).mean(dim=-1)
    else:
        per_token = (prediction.float() - target).pow(2).mean(dim=-1)
    weight = masked.float()
    # ranks mask different numbers of tokens (padding): each rank's share of the global masked-token mean
    return masked_share((per_token * weight).sum(), weight.sum())


class Data2Vec(Objective):
    requires = "tokens"

    def __init__(self, encoder: TokenEncoder, *, mask_ratio: float, top_k: int, decoder_dim: int,
                 decoder_depth: int, decoder_heads: int, loss_beta: float, momentum: float,
                 momentum_end: float) -> None:
        super().__init__(encoder)
        self.mask_ratio, self.top_k, self.loss_beta = mask_ratio, top_k, loss_beta
        self.ema = MomentumSchedule(base=momentum, final=momentum_end, schedule="linear")
        self.decoder = TokenDecoder(in_dim=encoder.embed_dim, dim=decoder_dim, depth=decoder_depth,
                                    heads=decoder_heads, out_dim=encoder.embed_dim)
        self.teacher = make_teacher(encoder)

    @torch.no_grad()
    def targets(self, x: object) -> Tensor:
        teacher: TokenEncoder = self.teacher  # type: ignore[assignment]
        out = teacher.encode_tokens(teacher.tokenize(x), return_hidden_states=True)
        if not out.hidden_states:
            raise ConfigError(f"encoder {type(teacher).__name__} gave no hidden_states for data2vec targets")
        return layer_average_target(out.hidden_states, top_k=self.top_k)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "data2vec")
        x = views.global_views[0]
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        target = self.targets(x)
        sequence = encoder.tokenize(x)
        out, plan = encode_visible(encoder, sequence, ratio=self.mask_ratio, always_visible=pinned_tokens(encoder, x))
        assert out.tokens is not None
        prediction = self.decoder(out.tokens, plan, length=sequence.tokens.shape[1],
                                  padding_mask=sequence.padding_mask)
        loss = masked_regression(prediction, target, plan.masked, beta=self.loss_beta)
        return ObjectiveOutput(loss=loss, embeddings=out.pooled.detach(),
                               logs={"regression": global_log(loss), "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.ema.update([(self.teacher, self.encoder)], step=step, total_steps=total_steps)


@OBJECTIVES.register("data2vec", description="data2vec: predict the EMA teacher's top-K layer average at masked tokens (Baevski et al., 2022)")
def build_data2vec(*, encoder: TokenEncoder, mask_ratio: float = 0.6, top_k: int = 6, decoder_dim: int = 384,
                   decoder_depth: int = 2, decoder_heads: int = 6, loss_beta: float = 0.0, momentum: float = 0.999,
                   momentum_end: float = 0.9999) -> Data2Vec:
    """Paper (vision) defaults: mask ratio 0.6, top K = 6 blocks, L2 loss (β = 0), τ 0.999 → 0.9999 linear."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"objective.mask_ratio: must be in [0, 1), got {mask_ratio}")
    return Data2Vec(encoder, mask_ratio=mask_ratio, top_k=top_k, decoder_dim=decoder_dim,
                    decoder_depth=decoder_depth, decoder_heads=decoder_heads, loss_beta=loss_beta,
                    momentum=momentum, momentum_end=momentum_end)
