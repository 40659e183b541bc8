"""Cross-modal evaluation: retrieval recall@k in both directions and zero-shot classification by class embedding.

Embeddings are the paired objective's normalised projections (the shared space the towers were trained into).
``by="instance"`` counts a hit when the paired item itself is retrieved; ``by="class"`` when any retrieved item has
the query's label (the right digit for AV-MNIST-style label-derived pairs).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.errors import ConfigError
from omnissl.core.registry import EVALUATIONS
from omnissl.core.types import DataBundle, ViewSet, to_device
from omnissl.data.tensors import evaluation_loader
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, cell


@torch.no_grad()
def embed_pairs(objective: Any, dataset: Dataset[Any], bundle: DataBundle, *, device: torch.device,
                batch_size: int = 256) -> tuple[dict[str, Tensor], Tensor]:
    """Every pair once: ``{tower: (N, E)}`` normalised projections of every tower and labels ``(N,)``."""
    was_training = objective.training
    objective.eval()
    out: dict[str, list[Tensor]] = {name: [] for name in objective.names}
    labels = []
    try:
        for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
            x = to_device(batch["x"], device)
            projected, _ = objective.project({name: ViewSet(global_views=[x[name]]) for name in objective.names})
            for name in objective.names:
                out[name].append(projected[name].float().cpu())
            labels.append(torch.as_tensor(batch["y"]))
    finally:
        objective.train(was_training)
    return {name: torch.cat(parts) for name, parts in out.items()}, torch.cat(labels)


def tower_pairs(objective: Any, pairs: list[list[str]] | None, *, key: str) -> list[tuple[str, str, bool]]:
    """``(first, second, emergent)`` for the configured ``pairs`` (default: every pair of towers, in tower order).
    ``emergent``: the objective names the pairs its loss contrasts (``trained_pairs``) and this is not one of them —
    the two towers never trained together (ImageBind's emergent alignment)."""
    names = list(objective.names)
    chosen = [tuple(p) for p in pairs] if pairs else list(itertools.combinations(names, 2))
    for pair in chosen:
        if len(pair) != 2 or pair[0] == pair[1] or any(n not in names for n in pair):
            raise ConfigError(f"{key}.pairs: {list(pair)} is not a pair of two different towers; towers: {names}")
    trained = getattr(objective, "trained_pairs", None)
    together = None if trained is None else {frozenset(p) for p in trained}
    return [(a, b, together is not None and frozenset((a, b)) not in together) for a, b in chosen]


def direction(query: str, gallery: str, emergent: bool) -> str:
    return f"{query}→{gallery}" + (" (emergent)" if emergent else "")


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


class RetrievalProtocol(Protocol):
    """Recall@k both ways on the test pairs, by instance and by class, for each configured tower pair (paired rows
    only). Columns are ``"<query>→<gallery> <by> R@k"``; a pair that never trained together is marked
    ``(emergent)``."""

    scope = "objective"

    def __init__(self, *, ks: list[int], pairs: list[list[str]] | None = None) -> None:
        super().__init__("retrieval", {"ks": ks, **({"pairs": pairs} if pairs else {})})
        self.ks = tuple(ks)
        self.pairs = pairs

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        return None if row.objective is not None else "n/a: needs a paired objective"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        pairs = tower_pairs(row.objective, self.pairs, key="eval.protocols.retrieval")
        test, labels = embed_pairs(row.objective, ctx.test_set, ctx.bundle, device=ctx.device)
        columns, recalls = {}, {}
        for first, second, emergent in pairs:
            for query, gallery in ((first, second), (second, first)):
                for by in ("instance", "class"):
                    recall = recall_at_k(test[query], test[gallery], labels, labels, ks=self.ks, by=by)  # type: ignore[arg-type]
                    heading = f"{direction(query, gallery, emergent)} {by}"
                    recalls[heading] = recall
                    for k, value in recall.items():
                        columns[f"{heading} {k}"] = {"mean": value, "plain": True}
        headline = next(iter(columns.values()))
        details: dict[str, Any] = {"recall": recalls}
        if any(emergent for *_, emergent in pairs):
            details["emergent"] = [f"{a}↔{b}" for a, b, emergent in pairs if emergent]
        return cell(next(iter(columns)), {"mean": headline["mean"], "std": 0.0, "seeds": None},
                    columns=columns, details=details)


class ZeroShotProtocol(Protocol):
    """Zero-shot accuracy each way, for each configured tower pair: class embeddings from the other tower's train
    pairs (paired rows only). ImageBind's emergent zero-shot: audio classified by text never paired with audio."""

    scope = "objective"

    def __init__(self, *, pairs: list[list[str]] | None = None) -> None:
        super().__init__("zero_shot", {"pairs": pairs} if pairs else {})
        self.pairs = pairs

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        return None if row.objective is not None else "n/a: needs a paired objective"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        pairs = tower_pairs(row.objective, self.pairs, key="eval.protocols.zero_shot")
        train, train_labels = embed_pairs(row.objective, ctx.train_set, ctx.bundle, device=ctx.device)
        test, test_labels = embed_pairs(row.objective, ctx.test_set, ctx.bundle, device=ctx.device)
        columns = {}
        for first, second, emergent in pairs:
            for query, gallery in ((first, second), (second, first)):
                accuracy = zero_shot_accuracy(train[gallery], train_labels, test[query], test_labels)
                columns[f"zero-shot {query} by {gallery}" + (" (emergent)" if emergent else "")] = {
                    "mean": accuracy, "plain": True}
        headline = next(iter(columns.values()))["mean"]
        return cell(next(iter(columns)), {"mean": headline, "std": 0.0, "seeds": None}, columns=columns)


@EVALUATIONS.register("retrieval", description="cross-modal recall@k both ways for each tower pair (paired recipes)")
def build_retrieval(*, ks: list[int] | None = None, pairs: list[list[str]] | None = None) -> Protocol:
    """``ks``: the recall cut-offs (default [1, 5, 10]). ``pairs``: the tower pairs to retrieve between, each both
    ways (``[[audio, text]]``; default every pair of towers)."""
    chosen = ks or [1, 5, 10]
    if any(k < 1 for k in chosen):
        raise ValueError(f"recall cut-offs must be ≥ 1, got {chosen}")
    return RetrievalProtocol(ks=chosen, pairs=pairs)


@EVALUATIONS.register("zero_shot", description="zero-shot classification by the other tower's class embeddings")
def build_zero_shot(*, pairs: list[list[str]] | None = None) -> Protocol:
    """``pairs``: the tower pairs, each both ways (default every pair of towers)."""
    return ZeroShotProtocol(pairs=pairs)
