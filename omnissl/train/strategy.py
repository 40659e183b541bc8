"""How the Trainer lays the objective out before training: SyncBatchNorm, activation checkpointing, torch.compile,
then DDP or FSDP (``train.sync_batchnorm``, ``train.activation_checkpointing``, ``train.compile``,
``train.strategy``), and how checkpoints read and write the model under each strategy.

The order matters: BatchNorm is swapped and blocks are marked before anything wraps the modules, FSDP shards before
compile (so the compiled graph sees the sharded parameters' hooks), and DDP wraps last so it sees the final module.
Nothing here changes a single-process run that turns none of these on.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from omnissl.core.config import TrainConfig
from omnissl.core.errors import ConfigError
from omnissl.train.distributed import DistInfo
from omnissl.nn.transformer import TransformerTrunk


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def uses_fsdp(config: TrainConfig, dist: DistInfo) -> bool:
    """FSDP needs a process group; with one process there is nothing to shard and the plain model trains."""
    return config.strategy == "fsdp" and dist.enabled


def check_strategy(config: TrainConfig, dist: DistInfo) -> None:
    """Refuse settings that would hang under FSDP: the k-NN monitor and the collapse stop run the model or save on
    rank 0 alone, while every sharded forward and every full-state gather needs all ranks."""
    if not uses_fsdp(config, dist):
        return
    if config.knn_every:
        raise ConfigError("train.knn_every: the k-NN monitor runs on rank 0 only, which train.strategy=fsdp cannot "
                          "(its weights are sharded over ranks); set train.knn_every=0 and evaluate after training")
    if config.stop_on_collapse:
        raise ConfigError("train.stop_on_collapse: the collapse monitor checkpoints from rank 0 alone, which "
                          "train.strategy=fsdp cannot; set it to false (collapse is still logged)")


def set_activation_checkpointing(module: nn.Module, *, enabled: bool) -> int:
    """Mark every transformer trunk of ``module``; returns how many were marked (0: the option has no effect)."""
    trunks = [m for m in module.modules() if isinstance(m, TransformerTrunk)]
    for trunk in trunks:
        trunk.checkpoint_blocks = enabled
    return len(trunks)


def prepare_model(objective: nn.Module, *, config: TrainConfig, dist: DistInfo,
                  device: torch.device) -> tuple[nn.Module, nn.Module, list[str]]:
    """``(objective, model, notes)``: ``objective`` is what checkpoints and ``on_step_end`` use, ``model`` what the
    forward calls (DDP's wrapper, or the objective itself); ``notes`` say what was turned on, for the run's log."""
    notes = []
    check_strategy(config, dist)
    sync_bn = config.sync_batchnorm if config.sync_batchnorm is not None else has_batchnorm(objective)
    if sync_bn and dist.enabled and has_batchnorm(objective):
        from omnissl.nn.sync_batchnorm import convert_sync_batchnorm  # only distributed runs need it

        objective = convert_sync_batchnorm(objective)
        notes.append(f"sync_batchnorm: BatchNorm statistics over the global batch of {dist.world_size} processes")
    if config.activation_checkpointing:
        count = set_activation_checkpointing(objective, enabled=True)
        notes.append(f"activation_checkpointing: {count} transformer trunk(s) recompute their blocks in backward"
                     if count else "activation_checkpointing: this model has no transformer trunk; nothing changes")
    if uses_fsdp(config, dist):
        from omnissl.train.fsdp import shard_objective

        objective = shard_objective(objective)
        notes.append(f"strategy fsdp: weights sharded over {dist.world_size} processes")
    if config.compile:
        objective.compile(backend=config.compile_backend)  # in place: state_dict keys keep their names
        notes.append(f"compile: torch.compile backend {config.compile_backend}")
    model = objective
    if dist.enabled and not uses_fsdp(config, dist):
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(objective, device_ids=device_ids, find_unused_parameters=True)
    return objective, model, notes


def gradient_sync(model: nn.Module, *, config: TrainConfig, dist: DistInfo,
                  last_micro: bool) -> AbstractContextManager[Any]:
    """Skip the gradient all-reduce / reduce-scatter on every micro-batch but the last of an accumulated step."""
    if uses_fsdp(config, dist):
        model.set_requires_gradient_sync(last_micro)  # type: ignore[operator]
        return nullcontext()
    if dist.enabled and not last_micro:
        return model.no_sync()  # type: ignore[operator]
    return nullcontext()


def model_state(objective: nn.Module, optimizer: torch.optim.Optimizer, *, config: TrainConfig,
                dist: DistInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model and optimizer state for a checkpoint. Under FSDP a collective (call it on every rank; rank 0 gets the
    full state); otherwise torch's own state dicts, so DDP and single-process checkpoints keep their format."""
    if uses_fsdp(config, dist):
        from omnissl.train.fsdp import full_state

        return full_state(objective, optimizer)
    return objective.state_dict(), optimizer.state_dict()


def load_model_state(objective: nn.Module, optimizer: torch.optim.Optimizer, payload: dict[str, Any], *,
                     config: TrainConfig, dist: DistInfo) -> None:
    if uses_fsdp(config, dist):
        from omnissl.train.fsdp import load_full_state

        load_full_state(objective, optimizer, model=payload["model"], optim=payload["optimizer"])
        return
    objective.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])


def local_tensors(tensors: Any, *, config: TrainConfig, dist: DistInfo) -> list[torch.Tensor]:
    """What this rank can check for NaN/Inf without a collective (its shards under FSDP)."""
    if uses_fsdp(config, dist):
        from omnissl.train.fsdp import local_tensors as shards

        return shards(tensors)
    return list(tensors)
