"""MoCo v2 (He et al., 2020, "Momentum Contrast for Unsupervised Visual Representation Learning";
Chen et al., 2020, "Improved Baselines with Momentum Contrastive Learning").

Query network ``f_q`` = encoder + 2-layer MLP projector; key network ``f_k`` = its momentum (EMA) copy, never
optimised. Loss (InfoNCE, MoCo Eq. 1) for queries ``q (B, D)``, positive keys ``k+ (B, D)`` and a FIFO queue of
``K`` negative keys ``(K, D)``, all ℓ2-normalised:
``L = −log exp(q·k+/τ) / (exp(q·k+/τ) + Σ_{k− ∈ queue} exp(q·k−/τ))``.
After the loss the batch's keys are enqueued (oldest out). Momentum ``m`` follows a cosine schedule from
``momentum`` (paper: 0.999) to ``momentum_end``. Paper defaults: τ=0.2, queue 65536, 128-d, MLP hidden 2048.

Single-device note: MoCo's "shuffling BN" needs several devices; here BN statistics are per batch on the key
encoder too (as in common single-GPU reimplementations).

Global batch under DDP: the loss is per query against a queue that is the same on every rank, so each rank takes
its share of the global mean (``token_mean``) and the logs are the global values. Every rank enqueues the keys
of **all** ranks (``gather_cat_nograd``, rank order, per view), so the queue holds exactly what one process
enqueuing the global batch would hold and stays identical across ranks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat_nograd, world_size
from omnissl.core.errors import ConfigError
from omnissl.objectives._global_stats import global_log, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import MomentumSchedule, make_teacher
from omnissl.objectives.heads import MLPHead
from omnissl.objectives.multiview import need_views, run_views
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def moco_logits(q: Tensor, k: Tensor, queue: Tensor, *, temperature: float) -> Tensor:
    """``(B, 1 + K)`` logits: column 0 is ``q·k+``, the rest ``q·queue``; inputs are normalised here (float32)."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ F.normalize(queue.float(), dim=1).T
    return torch.cat([positive, negative], dim=1) / temperature


def _query_mean(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy averaged over the queries; under DDP this rank's share of the mean over every rank's queries."""
    if world_size() == 1:
        return F.cross_entropy(logits, targets)  # verbatim: the single-process loss stays bit-for-bit
    return token_mean(F.cross_entropy(logits, targets, reduction="none"))


class MoCoV2(Objective):
    """Two global views; the first is the query view, the second the key view (``symmetric`` adds the swap)."""

    def __init__(self, encoder: Encoder, *, temperature: float, queue_size: int, projection_dim: int,
                 hidden_dim: int, momentum: float, momentum_end: float, symmetric: bool) -> None:
        super().__init__(encoder)
        self.temperature, self.symmetric = temperature, symmetric
        self.ema = MomentumSchedule(base=momentum, final=momentum_end)
        # MoCo v2's projector: fc-ReLU-fc without BatchNorm.
        self.projector = MLPHead(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, out_dim=projection_dim,
                                 num_layers=2, batch_norm=False)
        self.key_encoder = make_teacher(encoder)
        self.key_projector = make_teacher(self.projector)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, projection_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def _query(self, x: object) -> Tensor:
        return self.encoder(x).pooled

    @torch.no_grad()
    def _key(self, x: object) -> Tensor:
        return F.normalize(self.key_projector(self.key_encoder(x).pooled).float(), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """FIFO: write ``keys (B, D)`` over the oldest entries, wrapping around the end of the queue."""
        keys = keys.detach().to(self.queue.dtype)
        size = self.queue.shape[0]
        if keys.shape[0] >= size:
            keys = keys[-size:]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(keys.shape[0], device=keys.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_ptr.fill_((ptr + keys.shape[0]) % size)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 2, "MoCo v2")
        first, second = views.global_views[:2]
        h1, h2 = run_views(self._query, [first, second]) if self.symmetric else (self._query(first), None)
        k1, k2 = run_views(self._key, [first, second]) if self.symmetric else (None, self._key(second))
        queue = self.queue.clone().detach()
        logits = moco_logits(self.projector(h1), k2, queue, temperature=self.temperature)
        targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = _query_mean(logits, targets)
        # One process with the global batch enqueues [all keys of view 1, all keys of view 2]: gather per view.
        keys = gather_cat_nograd(k2)
        if self.symmetric:
            logits2 = moco_logits(self.projector(h2), k1, queue, temperature=self.temperature)
            loss = (loss + _query_mean(logits2, targets)) / 2
            keys = torch.cat([gather_cat_nograd(k1), keys])
        if self.training:
            self.enqueue(keys)
        accuracy = token_mean((logits.argmax(dim=1) == 0).float())
        return ObjectiveOutput(loss=loss, embeddings=h1.detach(),
                               logs={"info_nce": global_log(loss), "positive_top1": global_log(accuracy),
                                     "momentum": self.ema.current})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        self.ema.update([(self.key_encoder, self.encoder), (self.key_projector, self.projector)], step=step,
                        total_steps=total_steps)


@OBJECTIVES.register("moco_v2", description="MoCo v2: momentum key encoder + FIFO queue of negatives (He et al., 2020)")
def build_moco_v2(*, encoder: Encoder, temperature: float = 0.2, queue_size: int = 65536, projection_dim: int = 128,
                  hidden_dim: int = 2048, momentum: float = 0.999, momentum_end: float = 1.0,
                  symmetric: bool = False) -> MoCoV2:
    """Paper defaults: τ=0.2, K=65536, m=0.999 (cosine to 1 here), 2-layer MLP head 2048→128."""
    if queue_size < 1:
        raise ConfigError(f"objective.queue_size: must be ≥ 1, got {queue_size}")
    return MoCoV2(encoder, temperature=temperature, queue_size=queue_size, projection_dim=projection_dim,
                  hidden_dim=hidden_dim, momentum=momentum, momentum_end=momentum_end, symmetric=symmetric)
