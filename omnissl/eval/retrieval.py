"""Cross-modal evaluation: retrieval recall@k in both directions and zero-shot classification by class embedding.

Embeddings are the paired objective's normalised projections (the shared space the towers were trained into).
``by="instance"`` counts a hit when the paired item itself is retrieved; ``by="class"`` when any retrieved item has
the query's label (the right digit for AV-MNIST-style label-derived pairs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.data.tensors import evaluation_loader
from omnissl.core.types import DataBundle, ViewSet, to_device


@torch.no_grad()
def embed_pairs(objective: Any, dataset: Dataset[Any], bundle: DataBundle, *, device: torch.device,
                batch_size: int = 256) -> tuple[dict[str, Tensor], Tensor]:
    """Every pair once: ``{tower: (N, E)}`` normalised projections and labels ``(N,)``."""
    was_training = objective.training
    objective.eval()
    out: dict[str, list[Tensor]] = {name: [] for name in objective.names}
    labels = []
    try:
        for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
            x = to_device(batch["x"], device)
            a, b, _ = objective.embed({name: ViewSet(global_views=[x[name]]) for name in objective.names})
            out[objective.names[0]].append(a.float().cpu())
            out[objective.names[1]].append(b.float().cpu())
            labels.append(torch.as_tensor(batch["y"]))
    finally:
        objective.train(was_training)
    return {name: torch.cat(parts) for name, parts in out.items()}, torch.cat(labels)


def recall_at_k(queries: Tensor, gallery: Tensor, query_labels: Tensor, gallery_labels: Tensor, *,
                ks: tuple[int, ...] = (1, 5, 10), by: Literal["instance", "class"] = "instance") -> dict[str, float]:
    """queries ``(N, E)`` and gallery ``(N, E)`` with row i of each a pair → recall@k for each k."""
    similarity = queries @ gallery.T
    top = similarity.topk(max(ks), dim=1).indices
    if by == "instance":
        hits = top == torch.arange(queries.shape[0]).unsqueeze(1)
    else:
        hits = gallery_labels[top] == query_labels.unsqueeze(1)
    return {f"R@{k}": hits[:, :k].any(dim=1).float().mean().item() for k in ks}


def zero_shot_accuracy(class_source: Tensor, class_labels: Tensor, queries: Tensor, query_labels: Tensor) -> float:
    """Each class is the mean of the other tower's (train-split) embeddings of that class — for label-derived
    captions this is CLIP's prompt ensemble; queries take the nearest class embedding."""
    classes = class_labels.unique()
    centroids = torch.stack([class_source[class_labels == c].mean(dim=0) for c in classes])
    centroids = torch.nn.functional.normalize(centroids, dim=1)
    predicted = classes[(queries @ centroids.T).argmax(dim=1)]
    return (predicted == query_labels).float().mean().item()


@dataclass
class RetrievalReport:
    dataset: str
    train_samples: int
    test_samples: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        header = "| model | direction | match | R@1 | R@5 | R@10 | zero-shot acc |"
        lines = [header, "|---|---|---|---|---|---|---|"]
        for row in self.rows:
            r = row["recall"]
            lines.append(f"| {row['model']} | {row['direction']} | {row['by']} | {100 * r['R@1']:.2f} | "
                         f"{100 * r['R@5']:.2f} | {100 * r['R@10']:.2f} | {100 * row['zero_shot']:.2f} |")
        return "\n".join(lines)


def retrieval_rows(model: str, objective: Any, bundle: DataBundle, *, train: Dataset[Any], test: Dataset[Any],
                   device: torch.device) -> list[dict[str, Any]]:
    """Recall@k both ways on the ``test`` pairs; zero-shot class embeddings from the ``train`` pairs."""
    train_embeddings, train_labels = embed_pairs(objective, train, bundle, device=device)
    test_embeddings, test_labels = embed_pairs(objective, test, bundle, device=device)
    first, second = objective.names
    rows = []
    for query, gallery in ((first, second), (second, first)):
        zero_shot = zero_shot_accuracy(train_embeddings[gallery], train_labels, test_embeddings[query], test_labels)
        for by in ("instance", "class"):
            recall = recall_at_k(test_embeddings[query], test_embeddings[gallery], test_labels, test_labels, by=by)
            rows.append({"model": model, "direction": f"{query}→{gallery}", "by": by, "recall": recall,
                         "zero_shot": zero_shot})
    return rows
