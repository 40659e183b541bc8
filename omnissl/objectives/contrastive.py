"""Contrastive loss functions shared by SimCLR, SimCSE, GraphCL, SCARF, MoCo and CLIP-style objectives."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float) -> Tensor:
    """Normalised-temperature cross entropy (Chen et al., 2020, "A Simple Framework for Contrastive Learning").

    z1, z2: ``(B, D)`` embeddings of two views; row i of each is a positive pair. Every other of the 2B−2
    embeddings is a negative. Returns the mean over all 2B anchors of
    ``-log exp(sim(i, j)/τ) / Σ_{k≠i} exp(sim(i, k)/τ)`` with cosine similarity.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent needs two (B, D) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(z.device)
    return F.cross_entropy(logits, targets)


def info_nce(query: Tensor, positive: Tensor, negatives: Tensor | None = None, *, temperature: float) -> Tensor:
    """InfoNCE with in-batch keys (and optional extra negatives, e.g. MoCo's queue).

    query, positive: ``(B, D)``; negatives: ``(K, D)``. Logits are cosine similarities / τ against all B
    positives (the matching one is the target) followed by the K negatives.
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(positive.float(), dim=1)
    logits = q @ k.T
    if negatives is not None and negatives.numel():
        logits = torch.cat([logits, q @ F.normalize(negatives.float(), dim=1).T], dim=1)
    targets = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits / temperature, targets)
