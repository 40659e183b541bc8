"""CPC: Contrastive Predictive Coding (van den Oord et al., 2018, "Representation Learning with Contrastive
Predictive Coding").

Any encoder with per-step token outputs gives latent frames ``z (B, N, D)`` (plus an optional ``padding_mask
(B, N)``, True = padding, trailing). A GRU context network summarises ``z_{≤t}`` into ``c_t (B, N, H)``; for each
future step ``k = 1..K`` a linear map ``W_k`` predicts ``ẑ_{t+k} = W_k c_t`` and the bilinear score
``f_k(z, c_t) = zᵀ W_k c_t`` is trained with InfoNCE: the positive is the true frame ``z_{t+k}`` of the same
sequence, the negatives are the frames ``z'_{t+k}`` of the other ``B−1`` sequences at the same step
(the paper draws negatives from the minibatch; same-step negatives keep the cost at ``O(K·N·B²)``)::

    L = −1/|A| Σ_{(b,t,k) ∈ A} log( exp(f_k(z_{b,t+k}, c_{b,t})) / Σ_{b'} exp(f_k(z_{b',t+k}, c_{b,t})) )

where ``A`` are the anchors whose ``t`` and ``t+k`` are not padding, and padded frames are never negatives.
The encoder must not see the future it is asked to predict (use a causal / strided-local encoder). Reused by the
time-series and speech plugins; nothing here is modality-specific.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import IncompatibleError
from omnissl.objectives._global_stats import distributed, gather_rows, global_log, masked_share
from omnissl.objectives.base import Objective
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def cpc_loss(z: Tensor, predictions: list[Tensor], padding: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """InfoNCE over future steps. z: ``(B, N, D)`` frames; ``predictions[k-1]``: ``(B, N, D)`` = ``W_k c_t``
    for every t (only ``t < N−k`` is used); padding: ``(B, N)`` bool or ``None``.

    Returns the mean loss over valid anchors and the per-k accuracy ``(K,)`` of picking the true frame.
    """
    b, n, _ = z.shape
    valid = torch.ones(b, n, dtype=torch.bool, device=z.device) if padding is None else ~padding
    # Negatives are every rank's sequences (differentiable gather): the global batch's B·W − 1, not the local
    # B − 1. Gathering needs the same N on every rank (fixed-length crops); this rank's anchors sit at ``own``.
    keys = gather_cat(z)
    key_mask, own = gather_rows(valid)
    positive = torch.arange(own.start, own.stop, device=z.device)
    total = z.new_zeros((), dtype=torch.float32)
    count = z.new_zeros((), dtype=torch.float32)
    accuracy = []
    for k, prediction in enumerate(predictions, start=1):
        if k >= n:
            break
        pred = prediction[:, : n - k].float().transpose(0, 1)  # (N-k, B, D): anchors at t
        target = keys[:, k:].float().transpose(0, 1)  # (N-k, B_key, D): frames at t+k
        logits = pred @ target.transpose(1, 2)  # (N-k, B_anchor, B_key)
        key_valid = key_mask[:, k:].transpose(0, 1)  # (N-k, B_key)
        logits = logits.masked_fill(~key_valid.unsqueeze(1), float("-inf"))
        # steps where every sequence is padding have no key at all: finite dummy logits (never anchors) keep NaN
        # out of even the intermediate values
        logits = logits.masked_fill(~key_valid.any(dim=1).view(-1, 1, 1), 0.0)
        anchors = valid[:, : n - k].transpose(0, 1) & valid[:, k:].transpose(0, 1)  # t and t+k both real
        index = positive.view(1, b, 1).expand(logits.shape[0], b, 1)
        log_prob = F.log_softmax(logits, dim=-1).gather(2, index).squeeze(2)  # (N-k, B): the positive's log-prob
        total = total - log_prob.masked_fill(~anchors, 0.0).sum()
        count = count + anchors.sum()
        hits = (logits.argmax(dim=-1) == positive) & anchors
        if distributed():  # a share, so that the logged mean over ranks is the global accuracy
            accuracy.append(masked_share(hits.sum().float(), anchors.sum().float()))
        else:
            accuracy.append(hits.sum() / anchors.sum().clamp_min(1))
    if not bool(count > 0):
        raise ValueError(f"CPC: no anchor has a real frame k steps ahead (N={n}); use longer sequences or fewer steps")
    # ranks hold different numbers of anchors (padding): each rank's share of the global anchor mean
    return masked_share(total, count), torch.stack(accuracy).detach()


class CPC(Objective):
    """Latent frames → GRU context → K linear predictors → InfoNCE against other sequences' frames."""

    def __init__(self, encoder: Encoder, *, context_dim: int, prediction_steps: int, context_layers: int) -> None:
        super().__init__(encoder)
        if "tokens" not in encoder.output_kinds:
            raise IncompatibleError(f"cpc needs per-step token (frame) outputs; {type(encoder).__name__} only pools")
        if prediction_steps < 1:
            raise ValueError(f"prediction_steps must be ≥ 1, got {prediction_steps}")
        self.context = nn.GRU(encoder.embed_dim, context_dim, num_layers=context_layers, batch_first=True)
        self.predictors = nn.ModuleList([nn.Linear(context_dim, encoder.embed_dim, bias=False)
                                         for _ in range(prediction_steps)])

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        out = self.encoder(views.global_views[0])
        if out.tokens is None:
            raise IncompatibleError(f"cpc: {type(self.encoder).__name__} returned no tokens")
        z = out.tokens
        context, _ = self.context(z.float())  # causal: c_t depends on z_{≤t}; trailing padding cannot leak back
        predictions = [predict(context) for predict in self.predictors]
        loss, accuracy = cpc_loss(z, predictions, out.padding_mask)
        logs = {"cpc_acc_k1": global_log(accuracy[0]), f"cpc_acc_k{len(accuracy)}": global_log(accuracy[-1])}
        return ObjectiveOutput(loss=loss, logs=logs, embeddings=out.pooled.detach())


@OBJECTIVES.register("cpc", description="CPC: GRU context predicts future frames, InfoNCE (van den Oord et al., 2018)")
def build_cpc(*, encoder: Encoder, context_dim: int = 256, prediction_steps: int = 12,
              context_layers: int = 1) -> CPC:
    """Paper (audio): 512-d frames, 256-d GRU context, K=12 future steps. Needs an encoder with token outputs."""
    return CPC(encoder, context_dim=context_dim, prediction_steps=prediction_steps, context_layers=context_layers)
