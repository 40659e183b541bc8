"""Collectives that make an objective's loss the global-batch loss under DDP, on any backend (gloo on CPU too).

The rule every objective follows (and ``tests/core/test_distributed_objectives.py`` checks for every registered one):

    **the mean over ranks of each rank's loss equals the single-process loss on the global batch, and every
    dependency between samples (negatives, batch statistics, centres, Sinkhorn sums) goes through a differentiable
    collective below.**

Why that gives exact gradients: DDP averages parameter gradients over the ``W`` ranks. A rank whose loss is the full
global loss ``L`` (computed from :func:`gather_cat` copies) receives, through the collective's backward, the sum over
ranks of ``∂L/∂z_local`` — ``W`` times the single-process gradient of its own samples — and DDP's ``1/W`` cancels it.
A per-sample loss averaged locally (``loss_r`` = mean over the rank's samples, equal counts) is already ``W × `` its
share of ``L``. Either way the averaged gradient is ``∂L/∂θ``; mixing the two forms in one loss is fine.

Outside ``torch.distributed`` (or with one process) every function is the identity or the local reduction, so
single-process code pays nothing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed import nn as dist_nn


def world_size() -> int:
    """Processes in the default group; 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _sizes(n: int, device: torch.device) -> list[int]:
    local = torch.tensor([n], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(sizes, local)
    return [int(s) for s in sizes]


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor (B_r, ...)`` concatenated along dim 0 in rank order, **differentiably**: the backward
    pass sums each slice's gradient over all ranks and returns it to the rank that owns the slice. Ranks may hold
    different ``B_r`` (variable-size batches are padded for the transfer and trimmed)."""
    if world_size() == 1:
        return tensor
    sizes = _sizes(tensor.shape[0], tensor.device)
    largest = max(sizes)
    padded = tensor
    if tensor.shape[0] < largest:
        padded = torch.cat([tensor, tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))])
    parts = dist_nn.functional.all_gather(padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)


@torch.no_grad()
def gather_cat_nograd(tensor: torch.Tensor) -> torch.Tensor:
    """:func:`gather_cat` without gradients, for targets, teachers and queues."""
    if world_size() == 1:
        return tensor.detach()
    sizes = _sizes(tensor.shape[0], tensor.device)
    largest = max(sizes)
    padded = tensor.detach()
    if tensor.shape[0] < largest:
        padded = torch.cat([padded, padded.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)], dim=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks, differentiably (the gradient of the sum reaches every rank's addend)."""
    if world_size() == 1:
        return tensor
    return dist_nn.functional.all_reduce(tensor.contiguous(), op=dist.ReduceOp.SUM)


@torch.no_grad()
def all_reduce_sum_nograd(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of a statistic that needs no gradient (counts, EMA centres)."""
    if world_size() == 1:
        return tensor.detach()
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def global_mean(tensor: torch.Tensor, *, dim: int = 0) -> torch.Tensor:
    """The mean along ``dim`` over every rank's rows (rows may differ per rank), differentiably."""
    count = all_reduce_sum_nograd(torch.tensor(float(tensor.shape[dim]), device=tensor.device))
    return all_reduce_sum(tensor.sum(dim=dim)) / count


def global_count(count: torch.Tensor | int | float, *, device: torch.device | None = None) -> torch.Tensor:
    """How many of something (masked tokens, non-padded frames) all ranks hold together.

    A loss normalised by a per-rank count is not the global mean when counts differ between ranks; normalise a
    rank's *sum* by ``global_count(n) / world_size()`` instead, so the mean over ranks is the global mean."""
    value = count if isinstance(count, torch.Tensor) else torch.tensor(float(count), device=device)
    return all_reduce_sum_nograd(value.float())


def local_share(total_of_rank: torch.Tensor, count_of_rank: torch.Tensor | int | float) -> torch.Tensor:
    """``Σ_rank ℓ / (N_global / W)``: a rank's loss whose mean over ranks is ``Σ_all ℓ / N_global``."""
    device = total_of_rank.device
    return total_of_rank * world_size() / global_count(count_of_rank, device=device).clamp_min(1.0)
