"""Weighted k-NN classification on frozen features (Wu et al., 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination"; the protocol of DINO and solo-learn).

Each of the k nearest training features by cosine similarity votes for its label with weight ``exp(sim / T)``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


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
