"""TS-TCC (Eldele et al., IJCAI 2021, "Time-Series Representation Learning via Temporal and Contextual Contrasting").

A weak view (jitter + scaling) and a strong view (segment permutation + jitter) are encoded into per-step
features ``z_w, z_s (B, N, D)``. At a random step t, a transformer summarises ``z_{≤t}`` of one view into a
context ``c_t``; linear heads ``W_k`` (k = 1..K) predict the **other** view's ``z_{t+k}``, scored against the
other sequences of the batch (temporal contrasting, paper eq. 2, both directions)::

    L_TC = −1/(K·B) Σ_k Σ_i log( exp(z_{i,t+k}ᵀ W_k c_{j=i,t}) / Σ_j exp(z_{i,t+k}ᵀ W_k c_{j,t}) )

(as in the authors' code: for each true frame, a softmax over the batch's predictions). The two contexts of a
sample are then a positive pair under NT-Xent (contextual contrasting, τ = 0.2). Loss = λ1·(L_TC^s + L_TC^w) +
λ2·L_CC with λ1 = 1, λ2 = 0.7. Views: ``augment.global`` (count 1) gives the weak view, ``augment.local``
(count 1) the strong one; with two global views and no local view, the second global view is the strong one.

Global batch under DDP: contexts and future frames of every rank are gathered (``gather_cat``) so both contrasts
score against the global batch and are computed in full on each rank; the step ``t`` is rank 0's draw and the
usable length the shortest over ranks, so every rank's rows describe the same step, as in one process.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import IncompatibleError
from omnissl.objectives._global_stats import shared_ints, shared_min_int
from omnissl.objectives.base import Objective
from omnissl.objectives.contrastive import nt_xent
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


class ContextTransformer(nn.Module):
    """TS-TCC's autoregressive summariser: project ``(B, t, D)`` to ``dim``, prepend a learned context token, run
    a small transformer, return the context token ``(B, dim)``."""

    def __init__(self, in_dim: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, 0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

    def forward(self, z: Tensor) -> Tensor:
        x = self.embed(z)
        x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.body(x)[:, 0]


def temporal_contrast(context: Tensor, future: Tensor, predictors: nn.ModuleList) -> Tensor:
    """context ``(B, H)`` of one view; future ``(B, K, D)``: the other view's ``z_{t+1..t+K}`` (this rank's rows;
    under DDP every rank's are gathered, so the softmax runs over the global batch)."""
    context, future = gather_cat(context), gather_cat(future)
    b, steps, _ = future.shape
    loss = context.new_zeros((), dtype=torch.float32)
    for k in range(steps):
        prediction = predictors[k](context).float()  # (B, D)
        logits = future[:, k].float() @ prediction.T  # row: true frame i, column: prediction of sample j
        loss = loss - F.log_softmax(logits, dim=1).diagonal().sum()
    return loss / (b * steps)


class TSTCC(Objective):
    """Temporal + contextual contrasting over a weak and a strong view; needs per-step (token) outputs."""

    def __init__(self, encoder: Encoder, *, timesteps: int, context_dim: int, context_depth: int, heads: int,
                 projection_dim: int, temperature: float, lambda_temporal: float, lambda_contextual: float) -> None:
        super().__init__(encoder)
        if "tokens" not in encoder.output_kinds:
            raise IncompatibleError(f"ts_tcc needs per-step token outputs; {type(encoder).__name__} only pools")
        self.timesteps, self.temperature = timesteps, temperature
        self.lambda_temporal, self.lambda_contextual = lambda_temporal, lambda_contextual
        self.context = ContextTransformer(encoder.embed_dim, context_dim, context_depth, heads)
        self.predictors = nn.ModuleList([nn.Linear(context_dim, encoder.embed_dim) for _ in range(timesteps)])
        self.projector = nn.Sequential(nn.Linear(context_dim, projection_dim), nn.BatchNorm1d(projection_dim),
                                       nn.ReLU(inplace=True), nn.Linear(projection_dim, projection_dim // 2))

    @staticmethod
    def pick_views(views: ViewSet) -> tuple[Tensor, Tensor]:
        if views.local_views:
            return views.global_views[0], views.local_views[0]
        if len(views.global_views) >= 2:
            return views.global_views[0], views.global_views[1]
        raise ValueError("ts_tcc needs a weak and a strong view: augment.global (weak) + augment.local (strong)")

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        weak, strong = self.pick_views(views)
        out_w, out_s = self.encoder(weak), self.encoder(strong)
        z_w, z_s = out_w.tokens, out_s.tokens
        # Context and targets must be real steps in every series of the batch: stay inside the shortest one.
        padding = out_w.padding_mask
        if padding is None and out_s.padding_mask is None:
            usable = z_w.shape[1]
        else:
            pads = [p for p in (padding, out_s.padding_mask) if p is not None]
            usable = int(min((~p).sum(dim=1).min() for p in pads))
        usable = shared_min_int(usable, device=z_w.device)
        steps = min(self.timesteps, usable - 1)
        if steps < 1:
            raise ValueError(f"ts_tcc: sequences of {usable} real steps leave no future step to predict")
        t = int(torch.randint(0, usable - steps, (1,), device=z_w.device))
        t = shared_ints([t], device=z_w.device)[0]
        c_w, c_s = self.context(z_w[:, : t + 1]), self.context(z_s[:, : t + 1])
        tc_strong = temporal_contrast(c_s, z_w[:, t + 1 : t + 1 + steps], self.predictors)  # strong → weak
        tc_weak = temporal_contrast(c_w, z_s[:, t + 1 : t + 1 + steps], self.predictors)  # weak → strong
        p = self.projector(torch.cat([c_w, c_s]))
        cc = nt_xent(*p.chunk(2), temperature=self.temperature)
        loss = self.lambda_temporal * (tc_strong + tc_weak) + self.lambda_contextual * cc
        logs = {"tc": (tc_strong + tc_weak).detach(), "cc": cc.detach(), "t": float(t)}
        return ObjectiveOutput(loss=loss, logs=logs, embeddings=out_w.pooled.detach())


@OBJECTIVES.register("ts_tcc", description="TS-TCC temporal + contextual contrasting (Eldele et al., 2021)")
def build_ts_tcc(*, encoder: Encoder, timesteps: int = 10, context_dim: int = 64, context_depth: int = 2,
                 heads: int = 4, projection_dim: int = 64, temperature: float = 0.2, lambda_temporal: float = 1.0,
                 lambda_contextual: float = 0.7) -> TSTCC:
    """Paper defaults: λ1 = 1, λ2 = 0.7, τ = 0.2; ``timesteps`` K is data-dependent in the paper (here ≤ N−1)."""
    return TSTCC(encoder, timesteps=timesteps, context_dim=context_dim, context_depth=context_depth, heads=heads,
                 projection_dim=projection_dim, temperature=temperature, lambda_temporal=lambda_temporal,
                 lambda_contextual=lambda_contextual)
