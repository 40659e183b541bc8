"""Fine-tuning mode of the shared evaluation: a linear head on the backbone's pooled output, trained with
cross-entropy on the labelled train split, then test accuracy (mean ± std over seeds).

Two modes, as in the usual transfer protocol (e.g. He et al., 2022, MAE §4 "partial fine-tuning"):
``last_blocks`` trains the last ``blocks`` blocks of the backbone (+ everything after them, e.g. a final norm)
and the head, the rest frozen (frozen BatchNorm layers keep their statistics); ``full`` trains every weight with
the encoder learning rate ``lr · encoder_lr_scale`` (lower than the head's, so pretrained features are not
washed out by the head's large early gradients). Inputs are the raw collated samples (no augmentation), so any
modality works. The caller's encoder is never modified: each seed fine-tunes a deep copy.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from omnissl.core.errors import ConfigError
from omnissl.core.registry import EVALUATIONS
from omnissl.core.types import DataBundle, Encoder, to_device
from omnissl.data.tensors import evaluation_loader, training_loader
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, cell


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["last_blocks", "full"] = "last_blocks"
    blocks: int = Field(1, ge=1, description="last_blocks: how many of the backbone's last blocks to train")
    epochs: float = Field(10, gt=0)
    min_steps: int = Field(100, ge=1, description="at least this many steps (small sets: 10 epochs of 50 samples "
                                                  "would be 8 steps)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0, description="head learning rate (AdamW)")
    encoder_lr_scale: float = Field(0.1, gt=0, le=1, description="encoder lr = lr × this")
    weight_decay: float = Field(1e-4, ge=0)
    seeds: int = Field(1, ge=1)


def encoder_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The backbone's sequence of blocks: ``encoder.finetune_blocks()`` when defined, else the longest
    ``ModuleList``/``Sequential`` whose children all hold parameters (ViT ``blocks``, ResNet ``stages``,
    HF ``encoder.layer``), the first one found on ties."""
    if hasattr(encoder, "finetune_blocks"):
        return list(encoder.finetune_blocks())
    best: list[nn.Module] = []
    for module in encoder.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            children = list(module.children())
            if len(children) > len(best) and all(any(True for _ in c.parameters()) for c in children):
                best = children
    return best


def trainable_parameters(encoder: nn.Module, mode: str, blocks: int) -> list[nn.Parameter]:
    """``full``: all; ``last_blocks``: the last ``blocks`` blocks and every parameter registered after them."""
    params = list(encoder.parameters())
    if mode == "full":
        return params
    found = encoder_blocks(encoder)
    if not found:
        raise ConfigError(f"finetune: {type(encoder).__name__} has no sequence of blocks to fine-tune selectively; "
                          f"use mode=full (or define finetune_blocks())")
    if blocks > len(found):
        raise ConfigError(f"finetune.blocks: {type(encoder).__name__} has {len(found)} blocks, asked for {blocks}")
    chosen = {id(p) for block in found[-blocks:] for p in block.parameters()}
    last_block_param = max(i for i, p in enumerate(params) if id(p) in {id(q) for q in found[-1].parameters()})
    return [p for i, p in enumerate(params) if id(p) in chosen or i > last_block_param]


def _set_modes(encoder: nn.Module) -> None:
    """Train mode, except modules whose own parameters are all frozen (BatchNorm statistics stay put)."""
    encoder.train()
    for module in encoder.modules():
        own = list(module.parameters(recurse=False))
        if own and not any(p.requires_grad for p in own):
            module.eval()


@torch.no_grad()
def _test_accuracy(encoder: Encoder, head: nn.Linear, dataset: Dataset[Any], bundle: DataBundle, *,
                   select: Callable[[Any], Any], device: torch.device, batch_size: int) -> float:
    encoder.eval()
    correct = total = 0
    for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
        logits = head(encoder(to_device(select(batch["x"]), device)).pooled.float())
        y = torch.as_tensor(batch["y"]).to(device).long()
        correct += int((logits.argmax(dim=1) == y).sum())
        total += int(y.shape[0])
    return correct / max(total, 1)


def finetune_once(encoder: Encoder, train_set: Dataset[Any], test_set: Dataset[Any], bundle: DataBundle,
                  config: FinetuneConfig, *, num_classes: int, device: torch.device, seed: int,
                  select: Callable[[Any], Any]) -> float:
    """Fine-tune a copy of ``encoder`` (pooled ``(B, D)``) + a linear head ``D → num_classes``; test accuracy."""
    torch.manual_seed(seed)
    model = copy.deepcopy(encoder).to(device)
    head = nn.Linear(model.embed_dim, num_classes).to(device)
    trainable = trainable_parameters(model, config.mode, config.blocks)
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    optimizer = torch.optim.AdamW([
        {"params": head.parameters(), "lr": config.lr},
        {"params": trainable, "lr": config.lr * config.encoder_lr_scale},
    ], weight_decay=config.weight_decay)
    size = len(train_set)  # type: ignore[arg-type]
    steps = max(config.min_steps, math.ceil(config.epochs * size / config.batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    batches = iter(training_loader(train_set, bundle, batch_size=min(config.batch_size, size), seed=seed,
                                   start_batch=0, num_workers=0))
    _set_modes(model)
    for _ in range(steps):
        batch = next(batches)
        logits = head(model(to_device(select(batch["x"]), device)).pooled.float())
        loss = F.cross_entropy(logits, torch.as_tensor(batch["y"]).to(device).long())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return _test_accuracy(model, head, test_set, bundle, select=select, device=device, batch_size=256)


def finetune(encoder: Encoder, train_set: Dataset[Any], test_set: Dataset[Any], bundle: DataBundle,
             config: FinetuneConfig, *, device: torch.device, select: Callable[[Any], Any] | None = None,
             num_classes: int | None = None) -> dict[str, Any]:
    """Fine-tune over ``config.seeds`` seeds; ``{"mode", "blocks", "mean", "std", "per_seed"}`` (accuracies)."""
    classes = num_classes or bundle.num_classes
    if not classes:
        raise ConfigError("finetune: the dataset publishes no num_classes; cannot size the classification head")
    pick = select or (lambda x: x)
    scores = [finetune_once(encoder, train_set, test_set, bundle, config, num_classes=classes, device=device,
                            seed=seed, select=pick) for seed in range(config.seeds)]
    return {"mode": config.mode, "blocks": config.blocks if config.mode == "last_blocks" else None,
            "epochs": config.epochs, "min_steps": config.min_steps, "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0, "per_seed": scores}


class FinetuneProtocol(Protocol):
    """Fine-tuning as a table column (each seed fine-tunes a copy; the row's encoder is never changed)."""

    def __init__(self, config: FinetuneConfig) -> None:
        super().__init__("finetune", config.model_dump())
        self.config = config

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        if row.objective is not None:
            return "n/a: paired rows"
        return "n/a: raw input has no weights to fine-tune" if row.encoder is None else None

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        assert row.encoder is not None
        found = finetune(row.encoder, ctx.train_set, ctx.test_set, ctx.bundle, self.config, device=ctx.device,
                         select=row.select)
        score = {"mean": found["mean"], "std": found["std"], "seeds": len(found["per_seed"]),
                 "per_seed": found["per_seed"]}
        return cell(f"fine-tune {self.config.mode}", score, details={k: v for k, v in found.items()
                                                                     if k not in score})


@EVALUATIONS.register("finetune", description="linear head + last blocks (or everything) trained on the labels")
def build_finetune(*, mode: Literal["last_blocks", "full"] = "last_blocks", blocks: int = 1, epochs: float = 10,
                   min_steps: int = 100, batch_size: int = 64, lr: float = 3e-3, encoder_lr_scale: float = 0.1,
                   weight_decay: float = 1e-4, finetune_seeds: int = 1) -> Protocol:
    """The :class:`FinetuneConfig` fields (``finetune_seeds`` = its ``seeds``: probe seeds are a different knob)."""
    return FinetuneProtocol(FinetuneConfig(mode=mode, blocks=blocks, epochs=epochs, min_steps=min_steps,
                                           batch_size=batch_size, lr=lr, encoder_lr_scale=encoder_lr_scale,
                                           weight_decay=weight_decay, seeds=finetune_seeds))
