"""Small collectives the contrastive objectives need beyond :mod:`omnissl.collectives` (same rule, see there).

Each helper is the identity (or the plain local value) with one process, so single-process runs pay nothing and
stay bit-for-bit what they were.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from omnissl.collectives import all_reduce_sum_nograd, local_share, world_size


def log_mean(value: Tensor) -> Tensor:
    """The mean over ranks of a per-rank logged scalar, detached: with per-rank shares (``local_share``) or
    per-rank means of equal counts that is the global value, so every rank logs what one process would."""
    if world_size() == 1:
        return value.detach()
    return all_reduce_sum_nograd(value.float()) / world_size()


def share_of_mean(per_sample: Tensor) -> Tensor:
    """``per_sample.mean()`` with one process; under DDP the rank's share of the global mean over every rank's
    samples, so a short last batch on one rank still weighs each sample equally (``mean`` per rank would not)."""
    if world_size() == 1:
        return per_sample.mean()
    return local_share(per_sample.sum(), per_sample.numel())


def same_int(value: int, *, device: torch.device, reduce: str) -> int:
    """One integer agreed by every rank: ``reduce="min"`` takes the smallest (a length every rank can use),
    ``"first"`` rank 0's (a random draw that must be shared so gathered rows describe the same step)."""
    if reduce not in ("min", "first"):
        raise ValueError(f"same_int: reduce must be 'min' or 'first', got {reduce!r}")
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.long, device=device)
    if reduce == "min":
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    else:
        dist.broadcast(tensor, src=0)
    return int(tensor.item())
