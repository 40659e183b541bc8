"""A 2-D map of evaluation features coloured by label: t-SNE (van der Maaten & Hinton, 2008) via scikit-learn.

UMAP is not a dependency; t-SNE on ≤ a few thousand points takes seconds on a CPU and needs nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from omnissl.report.plots import _save, plt
from omnissl.core.types import class_name


def tsne_2d(features: Tensor, *, seed: int = 0) -> np.ndarray:
    """features ``(N, D)`` → ``(N, 2)``; PCA to ≤ 50 dims first (the usual t-SNE preprocessing)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = features.float().cpu().numpy()
    if x.shape[0] < 5:
        raise ValueError(f"an embedding map needs at least 5 samples, got {x.shape[0]}")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    if x.shape[1] > 50:
        x = PCA(n_components=min(50, x.shape[0]), random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (x.shape[0] - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_embedding_map(features: Tensor, labels: Tensor, path: Path, *, title: str,
                       class_names: list[str] | None = None, seed: int = 0) -> Path:
    """Scatter of the t-SNE map, one colour per label (≤ 20 classes get a legend, with the class names)."""
    points = tsne_2d(features, seed=seed)
    y = labels.long().cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 5.4))
    classes = np.unique(y)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for index, label in enumerate(classes):
        chosen = y == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=cmap(index % cmap.N),
                   label=class_name(names=class_names, label=int(label)))
    if len(classes) <= 20:  # beside the map: inside, it covered a corner's points
        ax.legend(markerscale=2.5, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  ncol=2 if len(classes) > 10 else 1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return _save(fig, path)


def knn_consistency(features: Tensor, labels: Tensor, *, k: int = 10) -> float:
    """Share of each point's ``k`` nearest neighbours (cosine) with the same label: a number to read beside the map."""
    z = torch.nn.functional.normalize(features.float(), dim=1)
    similarity = z @ z.T
    similarity.fill_diagonal_(-float("inf"))
    k = min(k, z.shape[0] - 1)
    index = similarity.topk(k, dim=1).indices
    return (labels[index] == labels.unsqueeze(1)).float().mean().item()
