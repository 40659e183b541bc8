"""Optimizers (AdamW, SGD, LARS) and the warm-up + cosine schedules for learning rate and weight decay."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from omnissl.core.config import TrainConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., 2017), as used by SimCLR/BYOL/Barlow Twins.

    Parameter groups with ``lars_exclude=True`` (biases, norms) get plain SGD with momentum and no decay.
    """

    def __init__(self, params: Iterable[object], *, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not group["lars_exclude"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    param_norm, update_norm = torch.norm(p), torch.norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (update_norm > 0),
                        group["trust_coefficient"] * param_norm / update_norm,
                        torch.ones_like(param_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def parameter_groups(model: nn.Module) -> list[dict[str, object]]:
    """Weight decay on weight matrices/kernels only; biases and normalisation parameters get none."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "apply_decay": True},
            {"params": no_decay, "apply_decay": False, "weight_decay": 0.0, "lars_exclude": True}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":  # coupled: weight_decay · w joins the gradient before Adam's normalisation
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return LARS(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def cosine_value(step: int, total: int, *, start: float, end: float, warmup: int = 0) -> float:
    """Linear warm-up from 0 to ``start`` over ``warmup`` steps, then cosine from ``start`` to ``end``."""
    if warmup and step < warmup:
        return start * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * progress))


def apply_schedules(optimizer: torch.optim.Optimizer, step: int, config: TrainConfig) -> float:
    """Set this step's learning rate and weight decay on every group; return the learning rate."""
    if config.schedule == "cosine":
        lr = cosine_value(step, config.steps, start=config.lr, end=config.min_lr, warmup=config.warmup_steps)
    else:
        lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    wd_end = config.weight_decay if config.weight_decay_end is None else config.weight_decay_end
    wd = cosine_value(step, config.steps, start=config.weight_decay, end=wd_end)
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_decay", True):
            group["weight_decay"] = wd
    return lr
