"""Global-batch statistics for the objectives, built on :mod:`omnissl.core.collectives` (see its rule).

Every helper takes the single-process branch **verbatim** when there is one process, so single-process losses stay
bit-for-bit what they were (``sum / count`` is not bitwise ``mean``); under DDP the same statistic is taken over
every rank's rows through a differentiable collective.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.collectives import (
    all_reduce_sum,
    all_reduce_sum_nograd,
    gather_cat_nograd,
    global_count,
    global_mean,
    local_share,
    rank,
    world_size,
)


def distributed() -> bool:
    """True when statistics must be combined over ranks."""
    return world_size() > 1


def sample_mean(values: Tensor) -> Tensor:
    """Mean over dim 0 of per-sample losses, as a rank's share: the mean over ranks is the global mean even when
    ranks hold different counts (the last, short batch)."""
    if not distributed():
        return values.mean()
    return local_share(values.sum(), values.shape[0] if values.ndim else 1)


def token_mean(values: Tensor) -> Tensor:
    """``values.mean()`` of per-item values (tokens, samples; any shape); under DDP the rank's share of the global
    mean over every rank's items, so ranks holding different counts still weigh each item equally."""
    return values.mean() if not distributed() else local_share(values.sum(), values.numel())


def token_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the ``M`` predicted tokens ``logits (M, V)``, as a share of the global mean."""
    if not distributed():
        return F.cross_entropy(logits, targets)
    return local_share(F.cross_entropy(logits, targets, reduction="sum"), targets.numel())


def masked_share(total: Tensor, count: Tensor) -> Tensor:
    """``total / count`` for a loss summed over a per-rank number of items (masked tokens, anchors); under DDP the
    rank's share of the global ``Σ total / Σ count``. ``count`` is clamped to ≥ 1 as the local form always was."""
    if not distributed():
        return total / count.clamp_min(1.0)
    return local_share(total, count)


def batch_mean(z: Tensor) -> Tensor:
    """Per-column mean ``(D,)`` of ``z (B, D)`` over the global batch, differentiably."""
    return z.mean(dim=0) if not distributed() else global_mean(z, dim=0)


def batch_count(z: Tensor) -> Tensor:
    """Rows of ``z`` over all ranks, as a float tensor (no gradient)."""
    return global_count(z.shape[0], device=z.device)


def batch_var(z: Tensor, *, unbiased: bool) -> Tensor:
    """Per-column variance ``(D,)`` over the global batch (two-pass: centred on the global mean), differentiably."""
    if not distributed():
        return z.var(dim=0, unbiased=unbiased)
    centred = z - global_mean(z, dim=0)
    n = batch_count(z)
    return all_reduce_sum(centred.pow(2).sum(dim=0)) / (n - 1 if unbiased else n)


def batch_matmul_sum(a: Tensor, b: Tensor) -> Tensor:
    """``Σ_rows aᵀ b`` over the global batch ``(D, D')`` — a sum of per-row outer products, differentiably."""
    return a.T @ b if not distributed() else all_reduce_sum(a.T @ b)


@torch.no_grad()
def batch_mean_nograd(z: Tensor) -> Tensor:
    """Per-column mean ``(1, D)`` over the global batch, without gradient (EMA centres)."""
    if not distributed():
        return z.mean(dim=0, keepdim=True)
    return all_reduce_sum_nograd(z.sum(dim=0, keepdim=True)) / batch_count(z)


@torch.no_grad()
def own_rows(count: int, *, device: torch.device) -> slice:
    """The slice of the global batch (ranks in order) that this rank's ``count`` rows occupy; one small collective
    under DDP, none in one process."""
    if not distributed():
        return slice(0, count)
    sizes = gather_cat_nograd(torch.tensor([count], device=device))
    start = int(sizes[: rank()].sum())
    return slice(start, start + count)


def gather_rows(z: Tensor) -> tuple[Tensor, slice]:
    """Every rank's rows of ``z`` (no gradient) and the slice of them this rank holds."""
    if not distributed():
        return z.detach(), slice(0, z.shape[0])
    return gather_cat_nograd(z), own_rows(z.shape[0], device=z.device)


@torch.no_grad()
def shared_ints(values: list[int], *, device: torch.device) -> list[int]:
    """Rank 0's ``values`` on every rank: batch-level random choices (a crop length) that the global batch shares,
    as it does in one process; every rank still draws its own first, so RNG streams advance alike."""
    if not distributed():
        return values
    tensor = torch.tensor(values, dtype=torch.long, device=device)
    torch.distributed.broadcast(tensor, src=0)
    return [int(v) for v in tensor]


@torch.no_grad()
def shared_min_int(value: int, *, device: torch.device) -> int:
    """The smallest of every rank's ``value``: a length every rank can use, so gathered rows line up."""
    if not distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.long, device=device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MIN)
    return int(tensor.item())


@torch.no_grad()
def shared_tensor(tensor: Tensor) -> Tensor:
    """Rank 0's ``tensor`` on every rank (same shape everywhere): a random draw over the global batch."""
    if not distributed():
        return tensor
    tensor = tensor.contiguous().clone()
    torch.distributed.broadcast(tensor, src=0)
    return tensor


@torch.no_grad()
def global_log(value: Tensor) -> Tensor:
    """A logged per-rank value averaged over ranks, so the logs show the global value (equal-weight ranks)."""
    if not distributed():
        return value.detach()
    return all_reduce_sum_nograd(value.detach().float()) / world_size()
