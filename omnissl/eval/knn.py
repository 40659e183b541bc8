"""Weighted k-NN classification on frozen features (Wu et al., 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination"; the protocol of DINO and solo-learn).

Each of the k nearest training features by cosine similarity votes for its label with weight ``exp(sim / T)``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.registry import EVALUATIONS
from omnissl.eval.metrics import classification_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, SingleTowerProtocol


@torch.no_grad()
def knn_predict(train_features: Tensor, train_labels: Tensor, test_features: Tensor, *, k: int,
                temperature: float, num_classes: int | None = None, chunk: int = 1024) -> Tensor:
    """train_features ``(N, D)``, train_labels ``(N,)``, test_features ``(M, D)`` → predicted labels ``(M,)``."""
    if train_features.shape[0] != train_labels.shape[0]:
        raise ValueError(f"{train_features.shape[0]} train features but {train_labels.shape[0]} labels")
    num_classes = num_classes or int(train_labels.max().item()) + 1
    k = min(k, train_features.shape[0])
    bank = F.normalize(train_features.float(), dim=1)
    labels = train_labels.long()
    predictions = []
    for start in range(0, test_features.shape[0], chunk):
        queries = F.normalize(test_features[start:start + chunk].float(), dim=1)
        similarity, index = (queries @ bank.T).topk(k, dim=1)
        weights = (similarity / temperature).exp()
        votes = torch.zeros(queries.shape[0], num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, labels[index], weights)
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(train_features: Tensor, train_labels: Tensor, test_features: Tensor, test_labels: Tensor, *,
                 k: int, temperature: float, num_classes: int | None = None) -> float:
    predicted = knn_predict(train_features, train_labels, test_features, k=k, temperature=temperature,
                            num_classes=num_classes)
    return (predicted == test_labels.long()).float().mean().item()


class KnnProtocol(SingleTowerProtocol):
    """Weighted k-NN top-1 at each ``k``: the train subset is the memory, the test subset the queries. Nothing
    is chosen, so nothing can leak; macro-F1 and balanced accuracy are those of the first ``k``."""

    protocol_name = "knn"

    def __init__(self, *, k: list[int], temperature: float) -> None:
        super().__init__(k=k, temperature=temperature)
        self.k, self.temperature = k, temperature

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        (train_f, train_y), (test_f, test_y) = ctx.features(row, "train"), ctx.features(row, "test")
        columns, metrics = {}, {}
        for i, k in enumerate(self.k):
            predicted = knn_predict(train_f, train_y, test_f, k=k, temperature=self.temperature,
                                    num_classes=ctx.num_classes)
            found = classification_metrics(predicted, test_y)
            columns[f"k-NN k={k}"] = {"mean": found["top1"], "plain": True}
            if i == 0:
                metrics = found
        first = f"k-NN k={self.k[0]}"
        headline = {"mean": metrics["top1"], "std": 0.0, "seeds": None}
        return {"score": headline, "columns": columns, "metrics": metrics,
                "details": {"dim": int(train_f.shape[1]), "by_k": {h: c["mean"] for h, c in columns.items()},
                            "headline": first}}


@EVALUATIONS.register("knn", description="weighted k-NN top-1 on frozen features (Wu et al., 2018)")
def build_knn(*, k: list[int] | None = None, temperature: float = 0.07) -> Protocol:
    """``k``: neighbours (default [20, 200], or the recipe's ``eval.knn_k``); ``temperature``: vote weight."""
    ks = k or [20, 200]
    if any(v < 1 for v in ks) or temperature <= 0:
        raise ValueError(f"k must be ≥ 1 and temperature > 0, got k={ks}, temperature={temperature}")
    return KnnProtocol(k=ks, temperature=temperature)
