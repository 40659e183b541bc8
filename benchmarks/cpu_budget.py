"""Fit a training schedule to a CPU-time budget: time a few optimizer steps exactly as the Trainer runs them.

Shared by the benchmarks that plan ``train.steps`` from ``--cpu-minutes`` (``image_objectives.py``,
``speech.py``). CPU time (``time.process_time``: this process, all threads) rather than wall time, so the plan
holds when other jobs share the machine.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from omnissl.core.config import Recipe
from omnissl.data.tensors import training_loader
from omnissl.train.assemble import assemble
from omnissl.train.runner import place_for_training


def step_cpu_seconds(recipe: Recipe, *, data_root: str | Path | None = None, steps: int = 2,
                     synthetic: int | None = None) -> float:
    """CPU seconds per optimizer step (loader, augmentation, forward, backward, AdamW): the median of ``steps``
    after one warm-up step (HuBERT fits its k-means there), measured outside the run's own budget.

    ``synthetic=N`` times on N fake samples of the recipe's shape (no data files), for tests."""
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    assembled = assemble(recipe, root=data_root, synthetic=synthetic)
    objective = place_for_training(assembled.objective, recipe.train, torch.device("cpu"))
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-6)
    loader = iter(training_loader(assembled.bundle.train, assembled.bundle, batch_size=recipe.train.batch_size,
                                  seed=0, start_batch=0, num_workers=0))
    times = []
    for step in range(steps + 1):
        tick = time.process_time()
        output = objective(assembled.views(next(loader)["x"]))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        objective.on_step_end(step=step, total_steps=1000)
        times.append(time.process_time() - tick)
    return statistics.median(times[1:])
