"""Graphs from user CSV files (pandas): an edge list, a node-feature table and optional graph labels.

Bad input is a ``DataError`` naming the file and row: edges naming a node outside the graph, missing feature
values, graphs with edges but no node rows (empty graphs), nodes not numbered ``0..n-1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from omnissl.errors import DataError
from omnissl.registry import DATASETS
from omnissl.types import DataBundle
from omnissl_graph.data import graph_bundle, synthetic_graphs


def read_csv_graphs(edges: Path, nodes: Path, labels: Path | None) -> list[Data]:
    """``edges``: columns ``graph, src, dst`` (node ids local to each graph, 0-based); ``nodes``: ``graph, node,
    <feature columns…>``; ``labels``: ``graph, label``. Every graph needs nodes rows 0..n-1 and a label."""
    import pandas as pd

    def load(path: Path, required: list[str]) -> Any:
        if not path.is_file():
            raise DataError(f"graph CSV not found: {path}")
        try:
            frame = pd.read_csv(path)
        except Exception as error:
            raise DataError(f"{path}: not a readable CSV ({error})") from error
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, frame.columns))})")
        return frame

    edge_frame = load(edges, ["graph", "src", "dst"])
    node_frame = load(nodes, ["graph", "node"])
    feature_cols = [c for c in node_frame.columns if c not in ("graph", "node")]
    if not feature_cols:
        raise DataError(f"{nodes}: no feature columns besides 'graph' and 'node'")
    bad = node_frame[feature_cols].isna().any(axis=1)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{nodes}: row {row + 2} (graph {node_frame['graph'].iloc[row]}) has a missing feature")
    label_map = None
    if labels is not None:
        label_frame = load(labels, ["graph", "label"])
        label_map = dict(zip(label_frame["graph"].tolist(), label_frame["label"].astype(int).tolist()))
    graphs = []
    edge_groups = dict(tuple(edge_frame.groupby("graph")))
    for graph_id, group in node_frame.groupby("graph", sort=True):
        order = group.sort_values("node")
        n = len(order)
        if order["node"].tolist() != list(range(n)):
            raise DataError(f"{nodes}: graph {graph_id} must list nodes 0..{n - 1} exactly once")
        x = torch.tensor(order[feature_cols].to_numpy(dtype="float32"))
        e = edge_groups.pop(graph_id, None)
        if e is None:
            ei = torch.zeros(2, 0, dtype=torch.long)
        else:
            ei = torch.tensor(e[["src", "dst"]].to_numpy(dtype="int64").T)
            out = (ei < 0) | (ei >= n)
            if out.any():
                row = int(e.index[int(out.any(0).nonzero()[0])])
                raise DataError(f"{edges}: row {row + 2}: edge of graph {graph_id} names a node outside 0..{n - 1}")
        if label_map is not None and graph_id not in label_map:
            raise DataError(f"{labels}: no label for graph {graph_id}")
        y = torch.tensor([label_map[graph_id] if label_map is not None else 0])
        graphs.append(Data(x=x, edge_index=ei, y=y))
    if edge_groups:
        first = next(iter(edge_groups))
        raise DataError(f"{edges}: graph {first} has edges but no rows in {nodes} (empty graph / missing features)")
    return graphs


@DATASETS.register("graph_csv", modality="graph", description="graphs from CSV: edge list + node features (+ labels)")
def graph_csv(*, edges: str, nodes: str, labels: str | None = None, test_fraction: float = 0.1,
              data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Paths relative to the data root unless absolute; see :func:`read_csv_graphs` for the columns."""
    if synthetic is not None:
        fake = synthetic_graphs(synthetic, num_features=4, num_classes=2, seed=seed)
        return graph_bundle(fake, num_classes=2, test_fraction=0.25, seed=seed, description="synthetic CSV graphs")
    graphs = read_csv_graphs(data_root / edges, data_root / nodes, data_root / labels if labels else None)
    return graph_bundle(graphs, test_fraction=test_fraction, seed=seed, description=f"CSV graphs {edges}")
