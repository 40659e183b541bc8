"""SwAV (Caron et al., 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments").

Every view (2 global + K local crops) → encoder → projector → ℓ2-normalised ``z (B, D)`` → scores against
``P`` unit prototypes ``(B, P)``. Codes ``q`` for the global views come from Sinkhorn-Knopp (3 iterations,
ε = 0.05) on the scores, optionally together with a queue of earlier batches' features. Swapped prediction:
``L = mean over global i, views v≠i of −Σ_k q_i[k] · log softmax(scores_v / τ)[k]`` with τ = 0.1.
Under DDP the Sinkhorn problem is the global batch's (gathered scores; the queue holds gathered features) and the
loss is each rank's share of the global mean. Prototypes are renormalised after every step and frozen for the first ``freeze_prototypes_steps`` steps.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.errors import ConfigError
from omnissl.objectives._global_stats import gather_rows, global_log, sample_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.heads import MLPHead, Prototypes
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, *, epsilon: float, iterations: int) -> Tensor:
    """Equal-partition soft codes (SwAV Algorithm 1): scores ``(B, P)`` → ``Q (B, P)``.

    Each row sums to 1 (one assignment per sample) and each column to ``B/P`` (prototypes used equally),
    up to the convergence reached in ``iterations`` alternating normalisations.
    """
    scores = scores.float()
    # Subtracting the max is a constant per matrix, so it leaves Q unchanged and avoids overflow in exp.
    q = torch.exp((scores - scores.max()) / epsilon).T  # (P, B)
    q /= q.sum()
    prototypes, batch = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)
        q /= prototypes
        q /= q.sum(dim=0, keepdim=True)
        q /= batch
    return (q * batch).T


def swapped_prediction(codes: list[Tensor], scores: list[Tensor], *, temperature: float) -> Tensor:
    """``codes[i] (B, P)`` for the global views, ``scores[v] (B, P)`` for all views; mean of the swapped CEs."""
    total, terms = scores[0].new_zeros((), dtype=torch.float32), 0
    for i, q in enumerate(codes):
        for v, s in enumerate(scores):
            if v == i:
                continue
            total = total - sample_mean((q * F.log_softmax(s.float() / temperature, dim=1)).sum(dim=1))
            terms += 1
    return total / terms


class SwAV(Objective):
    def __init__(self, encoder: Encoder, *, projection_dim: int, hidden_dim: int, num_prototypes: int,
                 temperature: float, epsilon: float, sinkhorn_iterations: int, queue_length: int,
                 queue_start_step: int, freeze_prototypes_steps: int) -> None:
        super().__init__(encoder)
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, sinkhorn_iterations
        self.queue_start_step, self.freeze_prototypes_steps = queue_start_step, freeze_prototypes_steps
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim)
        self.prototypes = Prototypes(dim=projection_dim, num_prototypes=num_prototypes)
        self.prototypes.normalize()
        # One queue per global view (features of earlier batches), used only to sharpen the Sinkhorn codes.
        self.register_buffer("queue", torch.zeros(2, queue_length, projection_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def _embed(self, x: object) -> Tensor:
        return self.encoder(x).pooled

    @torch.no_grad()
    def _push(self, view: int, z: Tensor) -> None:
        """Newest features first; the oldest fall off the end."""
        length = self.queue.shape[1]
        batch = min(z.shape[0], length)
        self.queue[view] = torch.cat([z[:batch].detach().to(self.queue.dtype), self.queue[view, : length - batch]])

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "SwAV")
        all_views = views.global_views[:2] + views.local_views
        h = run_views(self._embed, all_views)
        z = F.normalize(self.projector(torch.cat(h)).float(), dim=1).split([x.shape[0] for x in h])
        weight = self.prototypes.layer.weight
        if int(self.steps_done) < self.freeze_prototypes_steps:
            weight = weight.detach()  # the paper freezes the prototypes during the first epoch
        scores = [F.linear(zi, weight.float()) for zi in z]
        queued = int(self.queue_filled) if int(self.steps_done) >= self.queue_start_step else 0
        codes, pushed = [], []
        for i in range(2):
            # Sinkhorn's row and column sums run over the global batch: every rank solves the whole gathered
            # problem (identical on every rank) and keeps its own rows — exact, and cheap at (B·W + queue) × P.
            s, own = gather_rows(scores[i])
            if queued:
                s = torch.cat([s, F.linear(self.queue[i, :queued], weight.detach().float())])
            codes.append(sinkhorn_knopp(s, epsilon=self.epsilon, iterations=self.iterations)[own])
            pushed.append(gather_rows(z[i])[0])
        if self.training and self.queue.shape[1] > 0:
            # The queue holds the global batch in rank order on every rank, as one process with B·W would.
            for i in range(2):
                self._push(i, pushed[i])
            self.queue_filled.fill_(min(self.queue.shape[1], int(self.queue_filled) + pushed[0].shape[0]))
        loss = swapped_prediction(codes, scores, temperature=self.temperature)
        return ObjectiveOutput(loss=loss, embeddings=h[0].detach(), logs={"swapped_ce": global_log(loss)})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.steps_done.fill_(step + 1)
        self.prototypes.normalize()


@OBJECTIVES.register("swav", description="SwAV: Sinkhorn codes + swapped prediction over multi-crop (Caron et al., 2020)")
def build_swav(*, encoder: Encoder, projection_dim: int = 128, hidden_dim: int = 2048, num_prototypes: int = 3000,
               temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iterations: int = 3, queue_length: int = 0,
               queue_start_step: int = 0, freeze_prototypes_steps: int = 313) -> SwAV:
    """Paper defaults: 3000 prototypes, τ=0.1, ε=0.05, 3 Sinkhorn iterations, prototypes frozen 1 epoch (313 its)."""
    if num_prototypes < 2:
        raise ConfigError(f"objective.num_prototypes: need ≥ 2, got {num_prototypes}")
    return SwAV(encoder, projection_dim=projection_dim, hidden_dim=hidden_dim, num_prototypes=num_prototypes,
                temperature=temperature, epsilon=epsilon, sinkhorn_iterations=sinkhorn_iterations,
                queue_length=queue_length, queue_start_step=queue_start_step,
                freeze_prototypes_steps=freeze_prototypes_steps)
