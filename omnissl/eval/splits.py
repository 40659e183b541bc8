"""The subsets every evaluation shares, fixed once: a seeded stratified validation part carved from train (what
the k-NN monitor, ``checkpoints/best.pt`` and every hyper-parameter choice may look at) and the test split (read
only for the final scores). Recorded in ``RUN_DIR/splits.json`` (by the training monitors) with a hash of the indices."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.types import DataBundle
from omnissl.data.tensors import Subset, evaluation_loader


def dataset_labels(dataset: Dataset[Any], bundle: DataBundle, *, batch_size: int = 512) -> Tensor:
    """Labels ``(N,)`` of ``dataset`` in order: its ``labels`` tensor when it keeps one, else one collate pass."""
    if isinstance(dataset, Subset):
        inner = getattr(dataset.dataset, "labels", None)
        if isinstance(inner, Tensor) and inner.ndim == 1:
            return inner[torch.as_tensor(dataset.indices, dtype=torch.long)].long()
    own = getattr(dataset, "labels", None)
    if isinstance(own, Tensor) and own.ndim == 1 and len(own) == len(dataset):  # type: ignore[arg-type]
        return own.long()
    return torch.cat([torch.as_tensor(b["y"]).long().cpu() for b in evaluation_loader(dataset, bundle,
                                                                                       batch_size=batch_size)])


def stratified_split(labels: Tensor, *, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """``(fit, val)`` sorted index tensors: ``fraction`` of each class (at least one when the class has two or
    more members) goes to validation, drawn with ``seed``."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
        val.append(members[:cut])
        fit.append(members[cut:])
    return torch.cat(fit).sort().values, torch.cat(val).sort().values


def indices_hash(indices: Tensor | list[int]) -> str:
    """sha256 of the comma-joined indices: two runs carved the same subset iff the hashes match."""
    values = torch.as_tensor(indices).long().tolist()
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()


@dataclass
class ValidationSplit:
    """Train rows split into ``fit`` (the k-NN memory) and ``val`` (the queries whose score picks ``best.pt``)."""

    fit: Tensor
    val: Tensor
    seed: int
    fraction: float

    def payload(self) -> dict[str, Any]:
        """What ``RUN_DIR/splits.json`` records: what was carved, from which seed, and the indices' hash."""
        return {"source": "train", "seed": self.seed, "val_fraction": self.fraction, "fit": len(self.fit),
                "val": len(self.val), "val_indices_sha256": indices_hash(self.val), "val_indices": self.val.tolist(),
                "test": "never read for a choice (final scores only)"}


def validation_split(dataset: Dataset[Any], bundle: DataBundle, *, fraction: float, seed: int) -> ValidationSplit:
    fit, val = stratified_split(dataset_labels(dataset, bundle), fraction=fraction, seed=seed)
    return ValidationSplit(fit=fit, val=val, seed=seed, fraction=fraction)
