"""Contrastive loss functions shared by SimCLR, SimCSE, GraphCL, SCARF, MoCo and CLIP-style objectives.

Global batch under DDP (the rule of :mod:`omnissl.core.collectives`): the row-paired inputs of every rank are
concatenated with the differentiable :func:`~omnissl.core.collectives.gather_cat`, and the loss is computed in full on
each rank, so every rank's loss *is* the single-process loss on the global batch and negatives span all ranks
(lightly's ``gather_distributed=True``). With one process the gather is the identity: nothing changes.
Extra negatives (MoCo's queue) are already the same on every rank and are not gathered.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat


def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float) -> Tensor:
    """Normalised-temperature cross entropy (Chen et al., 2020, "A Simple Framework for Contrastive Learning").

    z1, z2: ``(B, D)`` embeddings of two views on this rank; row i of each is a positive pair. Under DDP the
    ``N = Σ_ranks B`` rows of every rank take part; every other of the 2N−2 embeddings is a negative. Returns the
    mean over all 2N anchors of ``-log exp(sim(i, j)/τ) / Σ_{k≠i} exp(sim(i, k)/τ)`` with cosine similarity.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"nt_xent needs two (B, D) tensors of one shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = gather_cat(z1), gather_cat(z2)
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(z.device)
    return F.cross_entropy(logits, targets)


def info_nce(query: Tensor, positive: Tensor, negatives: Tensor | None = None, *, temperature: float) -> Tensor:
    """InfoNCE with in-batch keys (and optional extra negatives, e.g. MoCo's queue).

    query, positive: ``(B, D)`` on this rank (gathered over ranks to ``(N, D)``); negatives: ``(K, D)``, the same
    on every rank. Logits are cosine similarities / τ against all N positives (the matching one is the target)
    followed by the K negatives; the mean is over the N queries.
    """
    if query.shape != positive.shape or query.ndim != 2:
        raise ValueError(f"info_nce needs query and positive (B, D) of one shape, got {tuple(query.shape)} and "
                         f"{tuple(positive.shape)}")
    q = F.normalize(gather_cat(query).float(), dim=1)
    k = F.normalize(gather_cat(positive).float(), dim=1)
    logits = q @ k.T
    if negatives is not None and negatives.numel():
        logits = torch.cat([logits, q @ F.normalize(negatives.float(), dim=1).T], dim=1)
    targets = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits / temperature, targets)
