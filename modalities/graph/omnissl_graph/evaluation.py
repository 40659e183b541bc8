"""The published evaluation protocols for frozen graph embeddings.

- Graph level (InfoGraph, Sun et al. 2020; GraphCL; GraphMAE): embeddings of *all* graphs, 10-fold stratified
  cross-validation; in each fold an SVM's C is chosen from {1e-3 … 1e3} by inner cross-validation on the training
  folds only, and the held-out fold's accuracy is recorded; report mean ± std over the 10 folds.
- Node level (DGI, GRACE, GraphMAE on Cora): logistic regression on frozen node embeddings with the public
  Planetoid split (train on the 140 labelled nodes, choose the regularisation on the 500 validation nodes,
  report accuracy on the 1,000 test nodes).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset

from omnissl.core.registry import EVALUATIONS
from omnissl.core.types import DataBundle, Encoder
from omnissl.eval.features import extract_features
from omnissl.eval.metrics import classification_metrics
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row, cell

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)


def all_graphs(bundle: DataBundle) -> Any:
    """Train and test graphs together: the published protocol cross-validates over the whole dataset."""
    return ConcatDataset([bundle.train, bundle.test]) if bundle.test is not None else bundle.train


def graph_embeddings(encoder: Encoder, bundle: DataBundle, *, device: torch.device | str = "cpu",
                     batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """Frozen pooled embeddings ``(G, D)`` and labels ``(G,)`` of every graph (eval mode, no augmentation)."""
    return extract_features(encoder, all_graphs(bundle), bundle, device=torch.device(device), batch_size=batch_size)


def svm_cross_validation(features: Tensor, labels: Tensor, *, folds: int = 10, inner_folds: int = 5, seed: int = 0,
                         c_grid: Sequence[float] = C_GRID, kernel: str = "rbf",
                         standardize: bool = True) -> dict[str, Any]:
    """SVM accuracy over stratified ``folds``; C picked per fold by ``inner_folds``-fold CV on its training part.

    features ``(G, D)``, labels ``(G,)`` → ``{"mean", "std", "per_fold", "chosen_C", "inner_cv"}`` (accuracies in
    [0, 1]; std is the population std over folds, as the reference scripts' ``np.std``). ``inner_cv`` = the mean
    over outer folds of the chosen C's inner-CV accuracy: a validation score that never reads a held-out fold.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = features.double().numpy(), labels.long().numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("SVM evaluation needs at least two classes")
    scores, chosen, inner = [], [], []
    predicted = np.zeros_like(y)
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in outer.split(x, y):
        steps = [StandardScaler()] if standardize else []
        model = make_pipeline(*steps, SVC(kernel=kernel))
        search = GridSearchCV(model, {"svc__C": list(c_grid)}, cv=StratifiedKFold(inner_folds, shuffle=True,
                                                                                random_state=seed))
        search.fit(x[train], y[train])
        scores.append(float(search.score(x[test], y[test])))
        chosen.append(float(search.best_params_["svc__C"]))
        inner.append(float(search.best_score_))
        predicted[test] = search.predict(x[test])
    return {"mean": statistics.fmean(scores), "std": float(np.std(scores)), "per_fold": scores, "chosen_C": chosen,
            "inner_cv": statistics.fmean(inner), "metrics": classification_metrics(torch.from_numpy(predicted), torch.from_numpy(y))}


@torch.no_grad()
def all_node_embeddings(encoder: Encoder, graph: Any, *, device: torch.device | str = "cpu") -> Tensor:
    """Frozen node embeddings ``(N, D)`` of the whole graph (eval mode)."""
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder.node_embeddings(graph.to(device)).float().cpu()  # type: ignore[operator]
    finally:
        encoder.train(was_training)


def logistic_regression_public_split(features: Tensor, graph: Any, *, c_grid: Sequence[float] = C_GRID,
                                     standardize: bool = True) -> dict[str, Any]:
    """Fit on ``train_mask`` nodes, pick C by ``val_mask`` accuracy, report ``test_mask`` accuracy.

    features ``(N, D)``; graph carries ``y (N,)`` and the three bool masks ``(N,)``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = features.double().numpy(), graph.y.cpu().numpy()
    train, val, test = (graph[m].cpu().numpy() for m in ("train_mask", "val_mask", "test_mask"))
    if standardize:
        scaler = StandardScaler().fit(x[train])
        x = scaler.transform(x)
    best: tuple[float, float, Any] | None = None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000).fit(x[train], y[train])
        val_acc = float(model.score(x[val], y[val]))
        if best is None or val_acc > best[0]:
            best = (val_acc, c, model)
    assert best is not None
    return {"test": float(best[2].score(x[test], y[test])), "val": best[0], "chosen_C": best[1],
            "metrics": classification_metrics(torch.from_numpy(best[2].predict(x[test])), torch.from_numpy(y[test]))}


class GraphSvm10Fold(Protocol):
    """The TU protocol as a table column: every graph of the table's train and test subsets (train first),
    stratified ``folds``-fold CV, C by inner CV on each training part. The CV folds are the published protocol's
    own held-out data, so the engine's test split is pooled into the CV rather than scored separately."""

    def __init__(self, **settings: Any) -> None:
        super().__init__("graph_svm_10fold", settings)

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        return None if row.objective is None else "n/a: paired rows"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        (train_f, train_y), (test_f, test_y) = ctx.features(row, "train"), ctx.features(row, "test")
        seed = ctx.seed if self.settings["cv_seed"] is None else self.settings["cv_seed"]
        found = svm_cross_validation(torch.cat([train_f, test_f]), torch.cat([train_y, test_y]), seed=seed,
                                     folds=self.settings["folds"], inner_folds=self.settings["inner_folds"])
        score = {"mean": found["mean"], "std": found["std"], "seeds": None, "per_fold": found["per_fold"]}
        return cell(f"SVM {self.settings['folds']}-fold", score, metrics=found["metrics"],
                    details={"dim": int(train_f.shape[1]), "chosen_C": found["chosen_C"], "inner_cv": found["inner_cv"]})


@EVALUATIONS.register("graph_svm_10fold", modality="graph",
                      description="SVM, 10-fold CV over all graphs, C by inner CV (InfoGraph/GraphCL/GraphMAE)")
def build_graph_svm_10fold(*, folds: int = 10, inner_folds: int = 5, cv_seed: int | None = None) -> Protocol:
    """``folds`` outer / ``inner_folds`` inner stratified folds; ``cv_seed`` default: the recipe's seed."""
    if folds < 2 or inner_folds < 2:
        raise ValueError(f"folds and inner_folds must be ≥ 2, got {folds}, {inner_folds}")
    return GraphSvm10Fold(folds=folds, inner_folds=inner_folds, cv_seed=cv_seed)


class PlanetoidSplit(Protocol):
    """The Planetoid public split as a table column: node embeddings of the whole graph (raw row: the bag of
    words), logistic regression fit on ``train_mask``, C chosen on ``val_mask``, accuracy on ``test_mask``."""

    def __init__(self) -> None:
        super().__init__("planetoid_split", {})

    def skip_reason(self, ctx: EvalContext, row: Row) -> str | None:
        graph = getattr(ctx.bundle.train, "graph", None)
        if graph is None or not all(hasattr(graph, m) for m in ("train_mask", "val_mask", "test_mask")):
            return "the dataset is not a node-level graph with the public masks"
        if row.encoder is not None and not hasattr(row.encoder, "node_embeddings"):
            return f"{type(row.encoder).__name__} gives no node embeddings"
        return None if row.objective is None else "n/a: paired rows"

    def measure(self, ctx: EvalContext, row: Row) -> Cell:
        graph = ctx.bundle.train.graph  # type: ignore[attr-defined]
        features = graph.x.float() if row.encoder is None else \
            all_node_embeddings(row.encoder.to(ctx.device), graph, device=ctx.device)
        found = logistic_regression_public_split(features, graph)
        return cell("public split", {"mean": found["test"], "std": 0.0, "seeds": 1}, metrics=found["metrics"],
                    details={"dim": int(features.shape[1]), "val": found["val"], "chosen_C": found["chosen_C"]})


@EVALUATIONS.register("planetoid_split", modality="graph",
                      description="logistic regression on the Planetoid public split (140/500/1000; DGI, GRACE)")
def build_planetoid_split() -> Protocol:
    return PlanetoidSplit()


def degree_label_histograms(batch: Any, *, max_degree: int) -> Tensor:
    """A PyG batch of ``G`` graphs → ``(G, max_degree + 1 + F)``: each graph's histogram of node degrees (degrees
    ≥ ``max_degree`` share the last bin) beside the sum of its node features (label counts for one-hot labels)."""
    from torch_geometric.nn import global_add_pool
    from torch_geometric.utils import degree

    deg = degree(batch.edge_index[0], batch.num_nodes).long().clamp_max(max_degree)
    counts = torch.nn.functional.one_hot(deg, max_degree + 1).float()
    return torch.cat([global_add_pool(counts, batch.batch, batch.num_graphs),
                      global_add_pool(batch.x.float(), batch.batch, batch.num_graphs)], 1)


class GraphHistogramSvm(Protocol):
    """The graph field's strong feature baseline: the same SVM 10-fold protocol on degree + node-label histograms
    (the bag-of-structures baselines the graph-kernel and InfoGraph tables beat), one row under
    ``graph_svm_10fold``'s column."""

    scope = "baseline"
    compares_with = "graph_svm_10fold"

    def __init__(self, **settings: Any) -> None:
        super().__init__("graph_histogram_svm", settings)

    def baseline_rows(self, ctx: EvalContext) -> list[tuple[str, Cell]]:
        from omnissl.data.tensors import evaluation_loader

        features, labels = [], []
        for split in (ctx.train_set, ctx.test_set):  # train first, as graph_svm_10fold pools them
            for batch in evaluation_loader(split, ctx.bundle, batch_size=256):
                if not hasattr(batch["x"], "num_graphs"):
                    return []  # node-level data: no graphs to histogram
                features.append(degree_label_histograms(batch["x"], max_degree=self.settings["max_degree"]))
                labels.append(torch.as_tensor(batch["y"]).long())
        seed = ctx.seed if self.settings["cv_seed"] is None else self.settings["cv_seed"]
        found = svm_cross_validation(torch.cat(features), torch.cat(labels), seed=seed, folds=self.settings["folds"],
                                     inner_folds=self.settings["inner_folds"])
        score = {"mean": found["mean"], "std": found["std"], "seeds": None, "per_fold": found["per_fold"]}
        heading = f"SVM {self.settings['folds']}-fold"
        return [("degree + label histograms", cell(heading, score, metrics=found["metrics"],
                                                    details={"chosen_C": found["chosen_C"]}))]


@EVALUATIONS.register("graph_histogram_svm", modality="graph",
                      description="strong baseline row: the 10-fold SVM on degree + node-label histograms")
def build_graph_histogram_svm(*, max_degree: int = 10, folds: int = 10, inner_folds: int = 5,
                              cv_seed: int | None = None) -> Protocol:
    """``max_degree``: the last degree bin; the CV settings as ``graph_svm_10fold`` (use the same)."""
    if max_degree < 1 or folds < 2 or inner_folds < 2:
        raise ValueError(f"need max_degree ≥ 1 and folds, inner_folds ≥ 2 (got {max_degree}, {folds}, {inner_folds})")
    return GraphHistogramSvm(max_degree=max_degree, folds=folds, inner_folds=inner_folds, cv_seed=cv_seed)
