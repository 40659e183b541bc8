"""Readers for TU graph sets that write nothing, load no pickles and never download.

Why not PyG's ``TUDataset`` / ``Planetoid`` classes: they write ``processed/`` next to ``raw/`` and load it back with
``torch.load(weights_only=False)`` (and ``pre_transform.pt`` always unsafely), and they download whenever a raw
file is missing. An audit (F2) showed that a ``processed/`` folder planted in a predictable cache runs code as the
victim. So TU graphs are parsed straight from the read-only raw folder with PyG's own text parser
(``read_tu_data``, the very function ``TUDataset.process`` calls: same graphs, nothing written or loaded back).
Every count (node-feature width, edge attributes, classes) is read from the files, so any TU set loads by name.
Planetoid sets are read by :mod:`omnissl_graph.planetoid_files` (re-exported here for older callers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch_geometric.data import Data

from omnissl.core.errors import DataError
from omnissl.core.textfiles import read_utf8
from omnissl_graph.checks import check_graph, require_files
from omnissl_graph.planetoid_files import read_cora_npz, read_cora_pickles  # noqa: F401  (older import path)

TU_RAW_FILES = ("A", "graph_indicator", "graph_labels")
MAX_ONE_HOT = 100_000  # widest label range one-hot encoded (PyG allocates nodes × range)
MAX_DEGREE_VALUES = 1 << 27  # nodes × (max degree + 1) floats for one-hot degrees (≈ 0.5 GB)
NodeFeatures = Literal["labels", "attributes", "labels+attributes", "degree", "constant"]


@dataclass
class TUGraphs:
    """One TU set as read: the graphs and what the files said about them."""

    graphs: list[Data]
    class_names: list[str]  # the graph-label values of the file, in class-index order (PyG sorts them)
    num_edge_features: int  # edge label one-hot width + edge attribute columns present in the files (unused)


def _lines(path: Path) -> list[str]:
    """A TU text file's lines, split the way PyG's ``read_txt_array`` splits it (``\\n``, last piece dropped)."""
    text = read_utf8(path)
    lines = text.split("\n")
    if lines[-1].strip():  # PyG drops an unterminated last line without a word
        raise DataError(f"{path}: line {len(lines)} has no line end (a truncated file?)")
    return lines[:-1]


def _int_rows(path: Path) -> list[list[int]]:
    rows = []
    for number, line in enumerate(_lines(path), start=1):
        try:
            rows.append([int(cell) for cell in line.split(",")])
        except ValueError:
            raise DataError(f"{path}: line {number}: expected comma-separated integers, got {line.strip()[:40]!r}") \
                from None
    return rows


def check_tu_raw(raw: Path, *, name: str) -> tuple[list[int], list[int]]:
    """What PyG's TU parser would get wrong without a word: unsorted or gapped graph ids (nodes silently moved to
    another graph), edges naming nodes that do not exist, row counts that disagree, node labels so large that
    their one-hot encoding would exhaust memory. Returns the graph labels and node counts, one per graph."""
    def rows(part: str, width: int | None = 1) -> list[list[int]]:
        path = raw / f"{name}_{part}.txt"
        found = _int_rows(path)
        bad = next((i for i, row in enumerate(found) if len(row) != (width or len(found[0]))), None)
        if bad is not None:
            raise DataError(f"{path}: line {bad + 1} has {len(found[bad])} values, expected {width or len(found[0])}")
        return found

    indicator = [row[0] for row in rows("graph_indicator")]
    where = raw / f"{name}_graph_indicator.txt"
    if not indicator or indicator[0] != 1:
        raise DataError(f"{where}: line 1: graph ids must start at 1 (got {indicator[:1] or 'an empty file'})")
    step = next((i for i in range(1, len(indicator)) if indicator[i] - indicator[i - 1] not in (0, 1)), None)
    if step is not None:
        raise DataError(f"{where}: line {step + 1}: graph id {indicator[step]} after {indicator[step - 1]} "
                        f"(nodes must be listed graph by graph, ids 1..G without gaps)")
    nodes, graphs = len(indicator), indicator[-1]
    labels = rows("graph_labels")
    if len(labels) != graphs:
        raise DataError(f"{raw}: {name}_graph_labels.txt has {len(labels)} labels but "
                        f"{name}_graph_indicator.txt names {graphs} graphs")
    edges = rows("A", 2)
    bad = next((i for i, (a, b) in enumerate(edges) if not (1 <= a <= nodes and 1 <= b <= nodes)), None)
    if bad is not None:
        raise DataError(f"{raw / f'{name}_A.txt'}: line {bad + 1}: edge {edges[bad]} names a node outside 1..{nodes}")
    for part, count in (("node_labels", nodes), ("edge_labels", len(edges))):
        if not (raw / f"{name}_{part}.txt").is_file():  # optional in the TU format
            continue
        found, path = rows(part, None), raw / f"{name}_{part}.txt"
        if len(found) != count:
            raise DataError(f"{path}: {len(found)} rows, expected {count} (one per {part.split('_')[0]})")
        for column in zip(*found):
            if max(column) - min(column) > MAX_ONE_HOT:
                raise DataError(f"{path}: labels span {min(column)}..{max(column)}, too wide to one-hot encode")
    for part, count in (("node_attributes", nodes), ("edge_attributes", len(edges))):
        path = raw / f"{name}_{part}.txt"
        if path.is_file() and len(_lines(path)) != count:
            raise DataError(f"{path}: {len(_lines(path))} rows, expected {count} (one per {part.split('_')[0]})")
    return [row[0] for row in labels], torch.bincount(torch.tensor(indicator) - 1).tolist()


def _required(raw: Path, name: str, node_features: NodeFeatures) -> list[str]:
    """The files ``node_features`` needs; a missing node-label file says which other choices the folder allows."""
    parts = {"labels": ["node_labels"], "attributes": ["node_attributes"],
             "labels+attributes": ["node_labels", "node_attributes"]}.get(node_features, [])
    present = [p for p in ("node_labels", "node_attributes") if (raw / f"{name}_{p}.txt").is_file()]
    missing = [p for p in parts if p not in present]
    if missing and (raw / f"{name}_A.txt").is_file():
        other = "attributes | " if "node_attributes" in present else ""
        raise DataError(f"{raw}: missing {name}_{missing[0]}.txt, which node_features: {node_features} reads "
                        f"(set data.node_features: {other}degree | constant for a set without it)")
    return [f"{name}_{part}.txt" for part in (*TU_RAW_FILES, *parts)]


def _features(data: Data, sizes: dict[str, int], node_features: NodeFeatures, *, node_slice: torch.Tensor,
              edge_slice: torch.Tensor, raw: Path) -> torch.Tensor:
    """The node-feature matrix ``(N, F)`` of the whole set for the chosen ``node_features``."""
    x, attributes, nodes = data.x, sizes["num_node_attributes"], int(node_slice[-1])
    if node_features == "labels":  # TUDataset(use_node_attr=False), PyG's default
        return x[:, attributes:]
    if node_features == "attributes":
        return x[:, :attributes]
    if node_features == "labels+attributes":  # TUDataset(use_node_attr=True): attributes first
        return x
    if node_features == "constant":  # what InfoGraph/GraphCL give sets without node labels
        return torch.ones(nodes, 1)
    # PyG's split made edge ids local to each graph: shift them back to global ids to count degrees.
    per_edge = torch.repeat_interleave(node_slice[:-1], edge_slice.diff())
    degree = torch.bincount(data.edge_index[0] + per_edge, minlength=nodes)
    width = int(degree.max()) + 1  # OneHotDegree(max_degree) with the set's own largest degree
    if nodes * width > MAX_DEGREE_VALUES:
        raise DataError(f"{raw}: one-hot degrees 0..{width - 1} for {nodes} nodes are too large "
                        f"(set data.node_features: constant)")
    return torch.nn.functional.one_hot(degree, width).float()


def read_tu(raw: Path, *, name: str, node_features: NodeFeatures = "labels") -> TUGraphs:
    """``<raw>/<name>_*.txt`` → one ``Data(x, edge_index, y)`` per graph, exactly as ``TUDataset(name)`` yields
    them (``labels``: one-hot node labels, ``use_node_attr=False``; ``labels+attributes``: ``use_node_attr=True``;
    edge attributes dropped, graph attributes — regression targets — not used)."""
    from torch_geometric.io import read_tu_data

    require_files(raw, _required(raw, name, node_features), hint="TU raw files")
    labels, node_counts = check_tu_raw(raw, name=name)
    try:
        data, slices, sizes = read_tu_data(str(raw), name)
    except DataError:
        raise
    except Exception as error:  # PyG raises bare errors on malformed raw files: name the folder
        raise DataError(f"{raw}: PyG could not read it ({type(error).__name__}: {error})") from error
    # Labels as PyG remaps them (sorted unique values → 0..C-1), read here so a graph_attributes file, which PyG
    # would prefer as a regression target, cannot replace the class labels.
    values, y = torch.tensor(labels).unique(sorted=True, return_inverse=True)
    node_slice, edge_slice = torch.tensor([0, *node_counts]).cumsum(0), slices["edge_index"]
    # PyG counts edges per graph without a minimum length: graphs after the last edge get no slice entry.
    edge_slice = torch.cat([edge_slice, edge_slice[-1:].repeat(len(node_counts) + 1 - len(edge_slice))])
    x = _features(data, sizes, node_features, node_slice=node_slice, edge_slice=edge_slice, raw=raw)
    graphs = []
    for i in range(len(labels)):
        lo, hi = int(node_slice[i]), int(node_slice[i + 1])
        edges = data.edge_index[:, int(edge_slice[i]):int(edge_slice[i + 1])]  # already local to graph i
        graph = Data(x=x[lo:hi], edge_index=edges, y=y[i:i + 1])
        check_graph(graph, f"{raw}: graph {i + 1}")
        graphs.append(graph)
    return TUGraphs(graphs=graphs, class_names=[str(int(v)) for v in values],
                    num_edge_features=sizes["num_edge_attributes"] + sizes["num_edge_labels"])


def read_tu_graphs(raw: Path, *, name: str, node_features: NodeFeatures = "labels") -> list[Data]:
    """The graphs of :func:`read_tu` alone."""
    return read_tu(raw, name=name, node_features=node_features).graphs
