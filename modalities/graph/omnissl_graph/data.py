"""Graph datasets on PyTorch Geometric: any TU graph-classification set, any Planetoid citation graph (Cora,
CiteSeer, PubMed), by name, and user CSV files.

Two input forms reach encoders and augmentations:

- **graph level** (TU, CSV): one item = one graph (PyG ``Data``); the collate returns
  ``{"x": Batch, "y": (G,), "index": (G,)}`` so pooled rows are graphs.
- **node level** (Planetoid): the data is one graph, and one item = one *node id*. The collate returns
  ``{"x": {"nodes": (B,) long, "graph": Data}, "y": (B,), "index": (B,)}``: the whole graph travels with every
  batch (message passing needs it) and encoders return one pooled row per requested node, so the shared
  k-NN / linear-probe protocol and ``y`` line up. ``train`` = every node outside the public test set, ``test`` =
  the 1,000 public test nodes; the public 140 / 500 / 1,000 masks stay on the graph for the published protocol
  (see :mod:`omnissl_graph.evaluation`). PyG's ``Data.to`` moves in place, so the shared graph is moved to the
  training device once, on the first batch, and stays there (augmentations return shallow copies, never edit it).

The data root is only ever read, and nothing is cached: TU raw text files are parsed directly and Planetoid sets come
from the data root's numpy copies (see :mod:`omnissl_graph.readers` for why PyG's dataset classes are not used).
A name is a folder under ``tu/`` or ``planetoid/`` (:mod:`omnissl_graph.catalog`); feature widths and class counts
are read from its files, never from a table of known names.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from omnissl.core.errors import DataError
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl_graph.catalog import dataset_folder
from omnissl_graph.checks import check_graph
from omnissl_graph.planetoid_files import read_planetoid_npz, read_planetoid_pickles
from omnissl_graph.readers import NodeFeatures, read_tu

# Shapes for synthetic stand-ins only (``synthetic`` reads no file, so it cannot learn them): node-feature width and
# class count. Real data never looks here; an unlisted name gets the first entry's shape.
SYNTHETIC_TU = {"MUTAG": (7, 2), "PROTEINS": (3, 2), "NCI1": (37, 2)}
SYNTHETIC_PLANETOID = {"Cora": (1433, 7), "CiteSeer": (3703, 6), "PubMed": (500, 3)}


class GraphListDataset(Dataset[Data]):
    """A list of PyG ``Data`` graphs, each with a graph label ``y`` of shape ``(1,)``."""

    def __init__(self, graphs: Sequence[Data]) -> None:
        self.graphs = list(graphs)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        graph = copy.copy(self.graphs[index])  # shallow: the stored graph is never modified
        # Not called "index": PyG's collate offsets any attribute whose name contains "index" by node counts.
        graph.sample_id = torch.tensor([index])
        return graph


def collate_graphs(samples: Sequence[Data]) -> dict[str, Any]:
    batch = Batch.from_data_list(list(samples))
    return {"x": batch, "y": batch.y.view(-1).long(), "index": batch.sample_id.view(-1)}


class NodeDataset(Dataset[int]):
    """Node ids of one graph (a split of them); items are ints, the collate attaches the whole graph."""

    def __init__(self, graph: Data, nodes: Tensor) -> None:
        self.graph, self.nodes = graph, nodes.long()

    def __len__(self) -> int:
        return int(self.nodes.numel())

    def __getitem__(self, index: int) -> int:
        return int(self.nodes[index])


class NodeCollate:
    """Node ids → ``{"x": {"nodes", "graph"}, "y", "index"}`` (the graph is shared, never copied)."""

    def __init__(self, graph: Data) -> None:
        self.graph = graph

    def __call__(self, samples: Sequence[int]) -> dict[str, Any]:
        nodes = torch.as_tensor(list(samples), dtype=torch.long)
        # "nodes" first: omnissl.core.types.batch_size_of reads the first value of a dict.
        return {"x": {"nodes": nodes, "graph": self.graph}, "y": self.graph.y[nodes], "index": nodes}


def graph_raw_features(x: Batch) -> Tensor:
    """Raw baseline for graph batches: per-graph sum and mean of node features, ``(G, 2F)``."""
    from torch_geometric.nn import global_add_pool, global_mean_pool

    feats = x.x.float()
    return torch.cat([global_add_pool(feats, x.batch, x.num_graphs), global_mean_pool(feats, x.batch, x.num_graphs)], 1)


def node_raw_features(x: dict[str, Any]) -> Tensor:
    """Raw baseline for node batches: the requested nodes' input features ``(B, F)``."""
    return x["graph"].x[x["nodes"]].float()


def graph_bundle(graphs: Sequence[Data], *, num_classes: int | None = None, test_fraction: float = 0.1,
                 seed: int = 0, description: str = "graphs", extra_spec: dict[str, Any] | None = None) -> DataBundle:
    """A graph-level bundle from a list of PyG ``Data`` (each with ``x``, ``edge_index``, ``y`` of shape (1,)).

    The stratified ``test_fraction`` split serves the shared protocol; the published 10-fold protocol uses
    ``train`` + ``test`` together (:func:`omnissl_graph.evaluation.all_graphs`).
    """
    if not graphs:
        raise DataError(f"{description}: no graphs")
    for i, graph in enumerate(graphs):
        check_graph(graph, f"{description}: graph {i}")
        if graph.y is None or graph.y.numel() != 1:
            raise DataError(f"{description}: graph {i} needs one label y, got {getattr(graph.y, 'shape', None)}")
    widths = {int(g.x.shape[1]) for g in graphs}
    if len(widths) != 1:
        raise DataError(f"{description}: graphs have different node-feature widths {sorted(widths)}")
    labels = torch.cat([g.y.view(1).long() for g in graphs])
    classes = num_classes or int(labels.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    test_idx: list[int] = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        test_idx += members[: int(round(len(members) * test_fraction))].tolist()
    test_set = set(test_idx)
    train = [g for i, g in enumerate(graphs) if i not in test_set]
    test = [graphs[i] for i in sorted(test_set)]
    if not train:
        raise DataError(f"{description}: test_fraction {test_fraction} leaves no training graphs")
    spec = {"num_features": widths.pop(), "num_classes": classes, "level": "graph", **(extra_spec or {})}
    return DataBundle(train=GraphListDataset(train), test=GraphListDataset(test) if test else None,
                      collate=collate_graphs, num_classes=classes, input_spec=spec,
                      raw_features=graph_raw_features, description=description)


def synthetic_graphs(count: int, *, num_features: int, num_classes: int, seed: int) -> list[Data]:
    """Small random graphs (4–11 nodes, ring plus random chords) with one-hot node features."""
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for i in range(count):
        n = int(torch.randint(4, 12, (1,), generator=generator))
        ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
        chords = torch.randint(0, n, (2, n // 2), generator=generator)
        edges = torch.cat([ring, chords], 1)
        edges = torch.cat([edges, edges.flip(0)], 1)
        x = torch.nn.functional.one_hot(torch.randint(0, num_features, (n,), generator=generator), num_features)
        graphs.append(Data(x=x.float(), edge_index=edges, y=torch.tensor([i % num_classes])))
    return graphs


@DATASETS.register("tu", modality="graph", description="any TU graph-classification set by name (tu/<NAME>/raw/)")
def tu_dataset(*, dataset: str = "MUTAG", node_features: NodeFeatures = "labels", test_fraction: float = 0.1,
               data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Reads ``tu/<dataset>/raw/<dataset>_*.txt`` as PyG's ``TUDataset`` would, in place: feature width, class count
    and edge-attribute presence come from the files. ``node_features``: ``labels`` (one-hot node labels, PyG's
    default), ``attributes``, ``labels+attributes`` (PyG's ``use_node_attr=True``), or for sets without node labels
    (IMDB, REDDIT, COLLAB) ``degree`` (one-hot degree) or ``constant`` (a single 1): an explicit choice, never a
    silent fallback."""
    name = dataset  # "name" is the recipe key of the builder itself
    if synthetic is not None:
        features, classes = SYNTHETIC_TU.get(name, SYNTHETIC_TU["MUTAG"])
        features = 1 if node_features == "constant" else features
        fake = synthetic_graphs(synthetic, num_features=features, num_classes=classes, seed=seed)
        return graph_bundle(fake, num_classes=classes, test_fraction=0.25, seed=seed, description=f"synthetic {name}")
    folder = dataset_folder(data_root=data_root, collection="tu", name=name)
    # Edge attributes (MUTAG's bond types) are not used by the encoders; dropping them keeps edge edits simple, and
    # their presence is published as num_edge_features.
    read = read_tu(folder / "raw", name=name, node_features=node_features)
    spec = {"class_names": read.class_names, "num_edge_features": read.num_edge_features}
    return graph_bundle(read.graphs, num_classes=len(read.class_names), test_fraction=test_fraction, seed=seed,
                        extra_spec=spec, description=f"TU {name} ({node_features}), stratified "
                                                     f"{1 - test_fraction:.0%}/{test_fraction:.0%} split")


def node_bundle(graph: Data, *, description: str) -> DataBundle:
    """A node-level bundle: train = nodes outside ``test_mask``, test = ``test_mask`` nodes."""
    check_graph(graph, description)
    if graph.y is None or graph.y.shape[0] != graph.num_nodes:
        raise DataError(f"{description}: needs one label per node, got y {getattr(graph.y, 'shape', None)}")
    classes = int(graph.y.max()) + 1
    test = graph.test_mask.nonzero().flatten()
    train = (~graph.test_mask).nonzero().flatten()
    collate = NodeCollate(graph)
    spec = {"num_features": int(graph.x.shape[1]), "num_classes": classes, "level": "node"}
    return DataBundle(train=NodeDataset(graph, train), test=NodeDataset(graph, test), collate=collate,
                      num_classes=classes, input_spec=spec, raw_features=node_raw_features, description=description)


def synthetic_planetoid(count: int, *, name: str, seed: int) -> DataBundle:
    """A ring of ``count`` (≥ 8) nodes with sparse binary features and the dataset's usual widths, masks 1/2 · 1/4 · 1/4."""
    features, classes = SYNTHETIC_PLANETOID.get(name, SYNTHETIC_PLANETOID["Cora"])
    generator = torch.Generator().manual_seed(seed)
    n = max(count, 8)
    x = (torch.rand(n, features, generator=generator) < 0.02).float()
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    graph = Data(x=x, edge_index=torch.cat([ring, ring.flip(0)], 1), y=torch.arange(n) % classes)
    graph.train_mask = torch.arange(n) < n // 2
    graph.val_mask = (torch.arange(n) >= n // 2) & (torch.arange(n) < 3 * n // 4)
    graph.test_mask = torch.arange(n) >= 3 * n // 4
    return node_bundle(graph, description=f"synthetic {name}")


@DATASETS.register("planetoid", modality="graph",
                   description="any Planetoid citation graph by name (Cora, CiteSeer, PubMed), public split")
def planetoid(*, dataset: str = "Cora", normalize_features: bool = True, allow_pickle: bool = False,
              data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Reads ``planetoid/<dataset>/<dataset lower-cased>_numpy.npz`` (the same graph and split as PyG's
    ``Planetoid``); features row-normalised as in GRACE/GraphMAE. Without the npz, ``allow_pickle: true`` reads the
    raw ``raw/ind.<name>.*`` files instead: they are Python pickles, which run code when crafted, so that is only for
    a data root you trust. The npz wins whenever it is there: the opt-in permits pickles, it never prefers them."""
    if synthetic is not None:
        return synthetic_planetoid(synthetic, name=dataset, seed=seed)
    folder = dataset_folder(data_root=data_root, collection="planetoid", name=dataset)
    npz, raw = folder / f"{dataset.lower()}_numpy.npz", folder / "raw"
    if npz.is_file():
        graph = read_planetoid_npz(npz)
    elif allow_pickle:
        graph = read_planetoid_pickles(raw, name=dataset)
    else:
        raise DataError(f"{npz}: not found (the numpy copy of {dataset}; to read the raw ind.{dataset.lower()}.* "
                        f"pickles in {raw} instead, trust them and set data.allow_pickle: true; "
                        f"see datasets/planetoid/CARD.md)")
    if normalize_features:
        graph.x = graph.x / graph.x.sum(1, keepdim=True).clamp_min(1)
    sizes = "/".join(str(int(graph[m].sum())) for m in ("train_mask", "val_mask", "test_mask"))
    return node_bundle(graph, description=f"{dataset} (Planetoid public split: {sizes})")


@DATASETS.register("cora", modality="graph", description="Planetoid Cora (= planetoid with dataset: Cora)")
def cora(*, normalize_features: bool = True, allow_pickle: bool = False, data_root: Path = Path("."),
         synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Kept so recipes and run directories that name ``cora`` keep working; see :func:`planetoid`."""
    return planetoid(dataset="Cora", normalize_features=normalize_features, allow_pickle=allow_pickle,
                     data_root=data_root, synthetic=synthetic, seed=seed)
