"""Frozen feature extraction: backbone pooled outputs (never projection heads), every sample once, in order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.types import DataBundle, Encoder, to_device
from omnissl.data.tensors import Subset, evaluation_loader

Select = Callable[[Any], Any]


def _identity(x: Any) -> Any:
    return x


def limit(dataset: Dataset[Any], max_samples: int | None, *, seed: int = 0) -> Dataset[Any]:
    """A fixed, seeded random subset of ``max_samples`` items (all of them when ``None`` or larger)."""
    size = len(dataset)  # type: ignore[arg-type]
    if max_samples is None or max_samples >= size:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(size, generator=generator)[:max_samples].sort().values.tolist()
    return Subset(dataset, indices)


@torch.no_grad()
def extract_features(encoder: Encoder, dataset: Dataset[Any], bundle: DataBundle, *, device: torch.device,
                     batch_size: int = 512, select: Select = _identity,
                     autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Return ``features (N, D)`` float32 and ``labels (N,)`` on CPU; the encoder is put in eval mode."""
    was_training = encoder.training
    encoder.eval()
    features, labels = [], []
    try:
        for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
            x = to_device(select(batch["x"]), device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                pooled = encoder(x).pooled
            features.append(pooled.float().cpu())
            labels.append(torch.as_tensor(batch["y"]).cpu())
    finally:
        encoder.train(was_training)
    feats, ys = torch.cat(features), torch.cat(labels)
    if feats.shape[0] != ys.shape[0]:
        raise ValueError(f"encoder gave {feats.shape[0]} pooled rows for {ys.shape[0]} labels")
    return feats, ys


@torch.no_grad()
def raw_features(dataset: Dataset[Any], bundle: DataBundle, *, batch_size: int = 512,
                 select: Select = _identity) -> tuple[Tensor, Tensor]:
    """The raw-input baseline's features: the bundle's ``raw_features`` of each batch, flattened."""
    if bundle.raw_features is None:
        raise ValueError("this dataset defines no raw-feature baseline")
    features, labels = [], []
    for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
        features.append(bundle.raw_features(select(batch["x"])).float().reshape(len(batch["y"]), -1))
        labels.append(torch.as_tensor(batch["y"]))
    return torch.cat(features), torch.cat(labels)
