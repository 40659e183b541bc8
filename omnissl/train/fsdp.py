"""FSDP2 (``torch.distributed.fsdp.fully_shard``) for ViT-scale models, and the full-state checkpoint round trip.

Each block of every :class:`omnissl.nn.transformer.TransformerTrunk` is its own FSDP unit (its weights are gathered
just before it runs and freed after), and the objective root holds the rest (tokenizers, heads, teachers). Sharded
parameters are DTensors; the checkpoint file still holds the *full* unsharded state dict (gathered to CPU on rank 0),
keyed exactly like the unwrapped objective's ``state_dict()``, so evaluation, export and a single-process run read an
FSDP checkpoint as they read any other. The optimizer state is keyed by parameter name (torch's distributed
checkpoint format) instead of by index, which is what lets any rank count re-shard it on resume.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from omnissl.nn.transformer import TransformerTrunk

# Gathered on every rank (the collective needs them all), kept on CPU by rank 0 only: GPU memory never holds a
# second full copy of a model that was sharded because it did not fit.
_SAVE = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Every rank reads the checkpoint file itself, so each passes the full state and keeps its own shard.
_LOAD = StateDictOptions(full_state_dict=True)


def shard_objective(objective: nn.Module) -> nn.Module:
    """Shard ``objective`` in place: one FSDP unit per transformer block, then the root; returns it."""
    for module in objective.modules():
        if isinstance(module, TransformerTrunk):
            for block in module.blocks:
                fully_shard(block)
    fully_shard(objective)
    return objective


def full_state(objective: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full model and optimizer state dicts (a collective: every rank calls it; ranks other than 0 get empty
    dicts back)."""
    return (get_model_state_dict(objective, options=_SAVE),
            get_optimizer_state_dict(objective, optimizer, options=_SAVE))


def load_full_state(objective: nn.Module, optimizer: torch.optim.Optimizer, *, model: dict[str, Any],
                    optim: dict[str, Any]) -> None:
    """Load a :func:`full_state` checkpoint into the sharded objective and its optimizer, on every rank."""
    set_model_state_dict(objective, model, options=_LOAD)
    set_optimizer_state_dict(objective, optimizer, optim_state_dict=optim, options=_LOAD)


def local_tensors(tensors: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Each rank's own shard of sharded tensors (others as they are): the finite checks look at local values and
    then agree across ranks, instead of gathering whole parameters every step."""
    return [t.to_local() if isinstance(t, DTensor) else t for t in tensors]
