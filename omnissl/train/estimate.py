"""A one-line cost estimate that ``validate`` and ``train`` print before a run commits.

Objective defaults are faithful to their papers (VICReg's 8192×3 expander, DINO's 65536 prototypes), which can
make a small CPU run take minutes per step without any hint. The line gives the trainable parameters (per tower
and in the objective's heads) and the time of one timed step at the recipe's batch size on the chosen device.
The timing is kept cheap: batches grow from 8 towards the recipe's while each projects under ``max_seconds`` (the
last one timed is extrapolated when the full batch would cost more), and a warm re-timing only when a step is quick.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from omnissl.core.types import DataBundle, to_device

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
    frozen: int  # not trained and outside every tower (e.g. an EMA teacher's head)
    towers: dict[str, tuple[int, bool]]  # name → (parameters, frozen: none of them trained, e.g. an EMA teacher)
    outside: int  # trainable outside every tower: projection heads, predictors, an online copy
    batch_size: int
    accumulate: int
    step_seconds: float  # one optimizer step (all ``accumulate`` micro-batches)
    timed_batch: int  # the batch actually timed: smaller than batch_size when extrapolated
    device: str
    steps_left: int

    def line(self) -> str:
        parts = [f"tower '{name}' {_short(count)}{' frozen' if frozen else ''}"
                 for name, (count, frozen) in self.towers.items()]
        parts.append(f"outside the towers {_short(self.outside)}")
        frozen = f"; {_short(self.frozen)} more frozen" if self.frozen else ""
        batch = f"batch {self.batch_size}" + (f" × {self.accumulate} accumulated" if self.accumulate > 1 else "")
        how = "" if self.timed_batch == self.batch_size else f", extrapolated from a batch of {self.timed_batch}"
        rate = self.batch_size * self.accumulate / max(self.step_seconds, 1e-9)
        total = timedelta(seconds=round(self.step_seconds * self.steps_left))
        return (f"cost: {self.trainable:,} trainable parameters ({', '.join(parts)}{frozen}); one step of {batch} "
                f"≈ {_seconds(self.step_seconds)} on {self.device}{how} ({rate:.0f} samples/s), so "
                f"{self.steps_left} steps ≈ {total}")


def count_parameters(objective: nn.Module) -> tuple[int, int, dict[str, tuple[int, bool]], int]:
    """(trainable, frozen outside the towers, per tower (parameters, frozen), trainable outside the towers).

    Towers are what evaluation reads; in DINO or BYOL that is the EMA teacher, which is never trained directly,
    so a tower's size counts all its parameters and says when none of them trains."""
    unique = {id(p): p for p in objective.parameters()}
    towers: dict[str, tuple[int, bool]] = {}
    in_towers: set[int] = set()
    for name, tower in getattr(objective, "towers", {}).items():
        params = list(tower.parameters())
        towers[name] = (sum(p.numel() for p in params), not any(p.requires_grad for p in params))
        in_towers |= {id(p) for p in params}
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    rest = [p for i, p in unique.items() if i not in in_towers]
    return (trainable, sum(p.numel() for p in rest if not p.requires_grad), towers,
            sum(p.numel() for p in rest if p.requires_grad))


def step_batch(bundle: DataBundle, *, batch_size: int) -> Any:
    """A batch of ``batch_size`` training samples (cycled when the set is smaller, as a synthetic one is), collated
    as training collates them; a private generator keeps the global RNG untouched."""
    indices = [i % len(bundle.train) for i in range(batch_size)]  # type: ignore[arg-type]
    loader = DataLoader(bundle.train, batch_sampler=[indices], collate_fn=bundle.collate, num_workers=0,
                        generator=torch.Generator().manual_seed(0))
    return next(iter(loader))


def _timed_step(objective: nn.Module, views_of: Callable[[Any], Any], batch: Any, *,
                device: torch.device, dtype: torch.dtype | None) -> float:
    begin = time.perf_counter()
    views = views_of(to_device(batch["x"], device))
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        loss = objective(views).loss
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    objective.zero_grad(set_to_none=True)
    return time.perf_counter() - begin


def _time(objective: nn.Module, views_of: Callable[[Any], Any], bundle: DataBundle, *, batch_size: int,
          device: torch.device, dtype: torch.dtype | None, max_seconds: float) -> tuple[float, int]:
    """(seconds of one forward + backward, the batch size timed). Batches grow ×4 from 8 while the next one
    projects under ``max_seconds``; a batch too costly to run is extrapolated from the largest one timed, which
    is large enough that a fixed per-step overhead (a whole graph per batch, say) does not dominate."""
    def step(size: int) -> float:
        return _timed_step(objective, views_of, step_batch(bundle, batch_size=size), device=device, dtype=dtype)

    size = min(8, batch_size)
    seconds = step(size)  # also the warm-up: lazy initialisation, allocator, kernel selection
    if size == batch_size and seconds < WARM_IF_UNDER_S:
        seconds = step(size)
    while size < batch_size:
        bigger = min(size * 4, batch_size)
        if seconds * bigger / size > max_seconds:
            return seconds * batch_size / size, size
        size, seconds = bigger, step(bigger)
    if seconds < WARM_IF_UNDER_S and batch_size > 8:  # the last size ran once, cold: time it warm when cheap
        seconds = step(batch_size)
    return seconds, batch_size


def estimate_cost(*, objective: nn.Module, views_of: Callable[[Any], Any], bundle: DataBundle, batch_size: int,
                  accumulate: int, device: torch.device, steps_left: int,
                  dtype: torch.dtype | None = None, work_on_copy: bool = False,
                  max_seconds: float = 10.0) -> CostEstimate:
    """Count ``objective``'s parameters and time one step on ``device`` (where the objective must already be).
``views_of`` turns a collated batch input into the objective's input (``Assembled.views``).

    ``work_on_copy``: time a deep copy under a forked RNG, so the model about to be trained (its weights, batch-norm
    statistics, queues) and the random stream of an exactly-resumable run are left exactly as they were.
    """
    trainable, frozen, towers, outside = count_parameters(objective)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices) if work_on_copy else nullcontext():
        model = copy.deepcopy(objective) if work_on_copy else objective
        model.train()
        seconds, timed = _time(model, views_of, bundle, batch_size=batch_size, device=device, dtype=dtype,
                               max_seconds=max_seconds)
        del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return CostEstimate(trainable=trainable, frozen=frozen, towers=towers, outside=outside, batch_size=batch_size,
                        accumulate=accumulate, step_seconds=seconds * accumulate, timed_batch=timed,
                        device=str(device), steps_left=steps_left)
