"""A one-line cost estimate that ``validate`` and ``train`` print before a run commits.

Objective defaults are faithful to their papers (VICReg's 8192×3 expander, DINO's 65536 prototypes), which can
make a small CPU run take minutes per step without any hint. The line gives the trainable parameters (per tower
and in the objective's heads) and the time of one timed step at the recipe's batch size on the chosen device.
The timing is kept cheap: a small batch first, the full batch only when the small one projects it under
``max_seconds``, and a second (warm) timing only when a step is quick; otherwise the small batch is extrapolated.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from omnissl.types import DataBundle, to_device

WARM_IF_UNDER_S = 1.0  # a second, warm timing costs at most this much more


def _short(n: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


@dataclass(frozen=True)
class CostEstimate:
    """What :func:`estimate_cost` found; ``line()`` is what the CLI prints."""

    trainable: int
    frozen: int
    towers: dict[str, int]
    heads: int
    batch_size: int
    accumulate: int
    step_seconds: float  # one optimizer step (all ``accumulate`` micro-batches)
    timed_batch: int  # the batch actually timed: smaller than batch_size when extrapolated
    device: str
    steps_left: int

    def line(self) -> str:
        parts = [f"tower '{name}' {_short(count)}" for name, count in self.towers.items()]
        parts.append(f"heads {_short(self.heads)}")
        frozen = f"; {_short(self.frozen)} more not trained" if self.frozen else ""
        batch = f"batch {self.batch_size}" + (f" × {self.accumulate} accumulated" if self.accumulate > 1 else "")
        how = "" if self.timed_batch == self.batch_size else f", extrapolated from a batch of {self.timed_batch}"
        rate = self.batch_size * self.accumulate / max(self.step_seconds, 1e-9)
        total = timedelta(seconds=round(self.step_seconds * self.steps_left))
        return (f"cost: {self.trainable:,} trainable parameters ({', '.join(parts)}{frozen}); one step of {batch} "
                f"≈ {_seconds(self.step_seconds)} on {self.device}{how} ({rate:.0f} samples/s), so "
                f"{self.steps_left} steps ≈ {total}")


def count_parameters(objective: nn.Module) -> tuple[int, int, dict[str, int], int]:
    """(trainable, frozen, trainable per tower, trainable outside every tower). A parameter shared by towers
    counts once in the total and in each tower that holds it."""
    trainable = {id(p): p.numel() for p in objective.parameters() if p.requires_grad}
    frozen = sum(p.numel() for p in objective.parameters() if not p.requires_grad)
    towers: dict[str, int] = {}
    in_towers: set[int] = set()
    for name, tower in getattr(objective, "towers", {}).items():
        ids = {id(p) for p in tower.parameters() if p.requires_grad}
        towers[name] = sum(trainable[i] for i in ids if i in trainable)
        in_towers |= ids
    heads = sum(count for i, count in trainable.items() if i not in in_towers)
    return sum(trainable.values()), frozen, towers, heads


def step_batch(bundle: DataBundle, *, batch_size: int) -> Any:
    """A batch of ``batch_size`` training samples (cycled when the set is smaller, as a synthetic one is), collated
    as training collates them; a private generator keeps the global RNG untouched."""
    indices = [i % len(bundle.train) for i in range(batch_size)]  # type: ignore[arg-type]
    loader = DataLoader(bundle.train, batch_sampler=[indices], collate_fn=bundle.collate, num_workers=0,
                        generator=torch.Generator().manual_seed(0))
    return next(iter(loader))


def _timed_step(objective: nn.Module, policies: dict[str, Any], batch: Any, *, paired: bool,
                device: torch.device, dtype: torch.dtype | None) -> float:
    begin = time.perf_counter()
    x = to_device(batch["x"], device)
    views = {name: policy(x[name]) for name, policy in policies.items()} if paired else policies["main"](x)
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = objective(views).loss
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    objective.zero_grad(set_to_none=True)
    return time.perf_counter() - begin


def _time(objective: nn.Module, policies: dict[str, Any], bundle: DataBundle, *, batch_size: int,
          paired: bool, device: torch.device, dtype: torch.dtype | None, max_seconds: float) -> tuple[float, int]:
    """(seconds of one forward + backward, the batch size timed)."""
    def step(size: int) -> float:
        return _timed_step(objective, policies, step_batch(bundle, batch_size=size), paired=paired, device=device,
                           dtype=dtype)

    small = min(8, batch_size)
    first = step(small)  # also the warm-up: lazy initialisation, allocator, kernel selection
    projected = first * batch_size / small
    if small < batch_size and projected > max_seconds:
        return projected, small
    seconds = step(batch_size) if small < batch_size else first
    if seconds < WARM_IF_UNDER_S:
        seconds = step(batch_size)
    return seconds, batch_size


def estimate_cost(*, objective: nn.Module, policies: dict[str, Any], bundle: DataBundle, batch_size: int,
                  accumulate: int, device: torch.device, paired: bool, steps_left: int,
                  dtype: torch.dtype | None = None, work_on_copy: bool = False,
                  max_seconds: float = 10.0) -> CostEstimate:
    """Count ``objective``'s parameters and time one step on ``device`` (where the objective must already be).

    ``work_on_copy``: time a deep copy under a forked RNG, so the model about to be trained (its weights, batch-norm
    statistics, queues) and the random stream of an exactly-resumable run are left exactly as they were.
    """
    trainable, frozen, towers, heads = count_parameters(objective)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices) if work_on_copy else nullcontext():
        model = copy.deepcopy(objective) if work_on_copy else objective
        model.train()
        seconds, timed = _time(model, policies, bundle, batch_size=batch_size, paired=paired, device=device,
                               dtype=dtype, max_seconds=max_seconds)
        del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return CostEstimate(trainable=trainable, frozen=frozen, towers=towers, heads=heads, batch_size=batch_size,
                        accumulate=accumulate, step_seconds=seconds * accumulate, timed_batch=timed,
                        device=str(device), steps_left=steps_left)
