"""Batch normalisation over the global batch under DDP, on any backend (gloo on CPU, NCCL on GPU).

``torch.nn.SyncBatchNorm`` refuses CPU tensors, so CPU multi-process runs (and the distributed-equality tests)
could not sync BatchNorm at all. :class:`SyncBatchNorm` follows the rule of :mod:`omnissl.core.collectives`: in training
mode under an initialised process group with more than one rank it normalises every rank's rows with the mean and
variance of the **global** batch, computed through a differentiable collective so the gradient of each input row
accounts for every other rank's rows exactly as single-process BatchNorm on the global batch does. Everywhere else
(eval mode, a single process) it is ``F.batch_norm`` with BatchNorm's own arguments, so single-process results are
bit-identical to plain BatchNorm.

It subclasses ``_BatchNorm`` with the same parameters and buffers, so ``state_dict`` keys are those of
``BatchNorm1d/2d/3d`` and checkpoints of converted and unconverted models load into each other.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from omnissl.core.collectives import gather_cat, world_size

_INPUT_DIMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


def _global_moments(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-channel global ``(mean, biased var, count)`` of ``x (N, C, *)`` over every rank's rows.

    Each rank contributes its count, mean and centred sum of squares (Chan's parallel combination): one
    differentiable all-gather, and no ``E[x²] − E[x]²`` cancellation when the mean is large against the spread."""
    dims = [0, *range(2, x.dim())]
    channels = x.shape[1]
    count = x.numel() // max(channels, 1)
    local_mean = x.sum(dim=dims) / max(count, 1)
    shape = [1, channels] + [1] * (x.dim() - 2)
    local_m2 = ((x - local_mean.view(shape)) ** 2).sum(dim=dims)
    counts_col = x.new_full((1, 1), float(count))
    stats = gather_cat(torch.cat([counts_col, local_mean.unsqueeze(0), local_m2.unsqueeze(0)], dim=1))
    counts = stats[:, :1].detach()  # (W, 1): a constant, no gradient
    means, m2s = stats[:, 1:1 + channels], stats[:, 1 + channels:]
    total = counts.sum()
    mean = (counts * means).sum(dim=0) / total
    m2 = m2s.sum(dim=0) + (counts * (means - mean) ** 2).sum(dim=0)
    return mean, m2 / total, total


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch under DDP (see module docstring).

    ``x (N, C)`` / ``(N, C, L)`` / ``(N, C, H, W)`` / ``(N, C, D, H, W)`` → same shape. The accepted input ranks
    are those of the BatchNorm it replaced (``input_dims``), so a misplaced tensor still fails as it did."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 input_dims: tuple[int, ...] = (2, 3, 4, 5)) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.input_dims = tuple(input_dims)

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in self.input_dims:
            raise ValueError(f"expected {' or '.join(f'{d}D' for d in self.input_dims)} input "
                             f"(got {input.dim()}D input of shape {tuple(input.shape)})")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        return self._global_forward(input)

    def _momentum_factor(self) -> float:
        """BatchNorm's running-average factor (``momentum=None`` → cumulative average), counting this step."""
        if not self.track_running_stats or self.num_batches_tracked is None:
            return 0.0
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return float(self.momentum)

    def _global_forward(self, input: Tensor) -> Tensor:
        # Statistics in float32 at least, as F.batch_norm does under autocast.
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        mean, var, total = _global_moments(x)
        if float(total) <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training across ranks, got input "
                             f"of shape {tuple(input.shape)} on this rank and {int(total)} values in all")
        factor = self._momentum_factor()
        if factor and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                unbiased = var.detach() * (total / (total - 1))
                self.running_mean.mul_(1 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm1d/2d/3d`` replaced by :class:`SyncBatchNorm` sharing its parameters and
    buffers (same ``state_dict`` keys and values, same train/eval mode). Returns the module itself when it is not a
    BatchNorm (its children replaced in place), else the replacement, like ``nn.SyncBatchNorm.convert_sync_batchnorm``."""
    output = module
    kind = next((k for k in _INPUT_DIMS if isinstance(module, k)), None)
    if kind is not None and not isinstance(module, SyncBatchNorm):
        output = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, input_dims=_INPUT_DIMS[kind])
        # Share, do not copy: optimisers and EMA teachers built before the conversion keep pointing at them.
        if module.affine:
            output.weight, output.bias = module.weight, module.bias
        output.running_mean, output.running_var = module.running_mean, module.running_var
        output.num_batches_tracked = module.num_batches_tracked
        output.train(module.training)
    for name, child in module.named_children():
        output.add_module(name, convert_sync_batchnorm(child))
    return output
