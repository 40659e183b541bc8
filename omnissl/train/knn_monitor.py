"""Periodic k-NN accuracy during training, on fixed seeded subsets of the train (memory) and test (queries)."""

from __future__ import annotations

import torch

from omnissl.train.assemble import Assembled
from omnissl.core.config import TrainConfig
from omnissl.eval.features import extract_features, limit
from omnissl.eval.knn import knn_accuracy
from omnissl.train.distributed import autocast_dtype


class KnnMonitor:
    def __init__(self, assembled: Assembled, device: torch.device, config: TrainConfig, k: int = 20,
                 temperature: float = 0.07) -> None:
        bundle = assembled.bundle
        self.enabled = bundle.test is not None and not assembled.recipe.is_paired
        self.assembled, self.device, self.k, self.temperature = assembled, device, k, temperature
        if self.enabled:
            assert bundle.test is not None
            self.memory = limit(bundle.train, config.knn_samples, seed=1)
            self.queries = limit(bundle.test, config.knn_samples, seed=2)
        self.dtype = autocast_dtype(config.precision, device)

    def measure(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        encoder = self.assembled.objective.towers["main"]
        bundle = self.assembled.bundle
        train_f, train_y = extract_features(encoder, self.memory, bundle, device=self.device, autocast_dtype=self.dtype)
        test_f, test_y = extract_features(encoder, self.queries, bundle, device=self.device, autocast_dtype=self.dtype)
        accuracy = knn_accuracy(train_f, train_y, test_f, test_y, k=self.k, temperature=self.temperature,
                                num_classes=bundle.num_classes)
        return {f"knn_top1_k{self.k}": accuracy}
