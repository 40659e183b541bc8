"""Periodic k-NN accuracy during training, on a validation split carved from train — never the test split.

The train split is cut once (seeded by the recipe's seed, stratified by label, ``eval.val_fraction`` of each class;
:func:`omnissl.eval.splits.validation_split`) into a *fit* part (the k-NN memory) and a *validation* part (the
queries). ``checkpoints/best.pt`` is kept by this score, so the choice of checkpoint never reads test labels; what
was carved is recorded in ``RUN_DIR/splits.json``. Every tower is measured (a paired run logs
``knn_top1_k20/<tower>`` and their mean as ``knn_top1_k20``, which picks ``best.pt``).
"""

from __future__ import annotations

from typing import Any

import torch

from omnissl.core.config import TrainConfig
from omnissl.data.tensors import Subset
from omnissl.eval.features import extract_features, limit
from omnissl.eval.knn import knn_accuracy
from omnissl.eval.splits import ValidationSplit, validation_split
from omnissl.train.assemble import Assembled
from omnissl.train.distributed import autocast_dtype


class KnnMonitor:
    def __init__(self, assembled: Assembled, device: torch.device, config: TrainConfig, k: int = 20,
                 temperature: float = 0.07) -> None:
        bundle, recipe = assembled.bundle, assembled.recipe
        self.assembled, self.device, self.k, self.temperature = assembled, device, k, temperature
        self.dtype = autocast_dtype(config.precision, device)
        self.split: ValidationSplit | None = None
        self.reason = ""
        try:
            size = len(bundle.train)  # type: ignore[arg-type]
        except TypeError:  # a streamed (sharded) train set has no length to carve a validation part from
            size, self.reason = 0, "the train set is streamed (no length to carve a validation split from)"
        self.enabled = size >= 4
        if self.enabled:
            self.split = validation_split(bundle.train, bundle, fraction=recipe.eval.val_fraction, seed=recipe.seed)
            self.memory = limit(Subset(bundle.train, self.split.fit.tolist()), config.knn_samples, seed=1)
            self.queries = limit(Subset(bundle.train, self.split.val.tolist()), config.knn_samples, seed=2)

    def record(self) -> dict[str, Any] | None:
        """What ``RUN_DIR/splits.json`` says (None when the monitor is off)."""
        if self.split is None:
            return None
        return {**self.split.payload(), "knn_memory": len(self.memory), "knn_queries": len(self.queries)}  # type: ignore[arg-type]

    def measure(self) -> dict[str, float]:
        """``{"knn_top1_k<k>": score}`` (+ one ``…/<tower>`` entry per tower when there are several)."""
        if not self.enabled:
            return {}
        bundle, key = self.assembled.bundle, f"knn_top1_k{self.k}"
        scores = {}
        for tower, encoder in self.assembled.encoders.items():
            select = self.assembled.selector(tower)
            train_f, train_y = extract_features(encoder, self.memory, bundle, device=self.device,
                                                autocast_dtype=self.dtype, select=select)
            val_f, val_y = extract_features(encoder, self.queries, bundle, device=self.device,
                                            autocast_dtype=self.dtype, select=select)
            scores[tower] = knn_accuracy(train_f, train_y, val_f, val_y, k=self.k, temperature=self.temperature,
                                         num_classes=bundle.num_classes)
        measured = {key: sum(scores.values()) / len(scores)}
        if len(scores) > 1:
            measured.update({f"{key}/{tower}": value for tower, value in scores.items()})
        return measured
