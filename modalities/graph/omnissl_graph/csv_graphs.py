"""Graphs from user CSV files: an edge list, a node-feature table and optional graph labels.

Bad input is a ``DataError`` naming the file and row (rows are file lines, the header is row 1): edges naming a node
outside the graph, fractional or text ids, text / missing / non-finite feature values, missing or text labels,
labels for graphs that do not exist, two labels for one graph, graphs with edges but no node rows, nodes not
numbered ``0..n-1``. Nothing is truncated, coerced or dropped: the audit (F17) found ``1.7`` read as node 1 and
extra label rows ignored, so every cell is parsed here with the standard ``csv`` module, not guessed by pandas.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import torch
from torch_geometric.data import Data

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.textfiles import read_utf8
from omnissl.core.types import DataBundle
from omnissl_graph.data import graph_bundle, synthetic_graphs


class Table:
    """A CSV file as columns of strings, with the file line of every row kept for error messages."""

    def __init__(self, path: Path, required: list[str]) -> None:
        self.path = path
        if not path.is_file():
            raise DataError(f"graph CSV not found: {path}")
        text = read_utf8(path)
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            rows = list(reader)
        except csv.Error as error:
            raise DataError(f"{path}: line {reader.line_num}: not a readable CSV ({error})") from None
        if not rows or not rows[0]:
            raise DataError(f"{path}: empty file (expected a header row with {', '.join(required)})")
        self.header = [name.strip() for name in rows[0]]
        duplicated = sorted({name for name in self.header if self.header.count(name) > 1})
        if duplicated:
            raise DataError(f"{path}: duplicate column name(s) {', '.join(duplicated)}")
        missing = [c for c in required if c not in self.header]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(self.header)})")
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != len(self.header):
                raise DataError(f"{path}: row {number} has {len(row)} fields, the header has {len(self.header)}")
        self.rows = rows[1:]

    def __len__(self) -> int:
        return len(self.rows)

    def numbers(self, column: str, *, integer: bool) -> list[float] | list[int]:
        """The column's values, refusing empty, non-numeric, non-finite and (``integer``) fractional cells."""
        at = self.header.index(column)
        values: list = []
        for number, row in enumerate(self.rows, start=2):
            cell = row[at].strip()
            if not cell:
                raise DataError(f"{self.path}: row {number}: column '{column}' is missing")
            try:
                if "_" in cell:  # float() would read "1_000" as 1000: not a CSV number
                    raise ValueError(cell)
                value = float(cell)
            except ValueError:
                raise DataError(f"{self.path}: row {number}: column '{column}' is not a number: {cell!r}") from None
            if not math.isfinite(value):
                raise DataError(f"{self.path}: row {number}: column '{column}' is not finite: {cell!r}")
            if integer:
                if not value.is_integer():
                    raise DataError(f"{self.path}: row {number}: column '{column}' must be an integer, got {cell!r}")
                try:
                    value = int(cell)  # exact, where float() would round a huge id
                except ValueError:
                    value = int(value)  # "3.0"
            values.append(value)
        return values


def read_labels(table: Table, graph_ids: set[int]) -> dict[int, int]:
    """``graph → label`` with one row per existing graph; labels are class ids ``0..C-1``."""
    graphs, labels = table.numbers("graph", integer=True), table.numbers("label", integer=True)
    first_row: dict[int, int] = {}
    for number, (graph, label) in enumerate(zip(graphs, labels), start=2):
        if graph in first_row:
            raise DataError(f"{table.path}: graph {graph} has two label rows (rows {first_row[graph]} and {number})")
        if graph not in graph_ids:
            raise DataError(f"{table.path}: row {number}: graph {graph} has no nodes in the node file "
                            f"(a label for a graph that does not exist)")
        if label < 0:
            raise DataError(f"{table.path}: row {number}: label {label} is negative (use class ids 0..C-1)")
        first_row[graph] = number
    return dict(zip(graphs, labels))  # type: ignore[arg-type]


def read_csv_graphs(edges: Path, nodes: Path, labels: Path | None) -> list[Data]:
    """``edges``: columns ``graph, src, dst`` (node ids local to each graph, 0-based); ``nodes``: ``graph, node,
    <feature columns…>``; ``labels``: ``graph, label``. Every graph needs nodes rows 0..n-1 and a label."""
    edge_table, node_table = Table(edges, ["graph", "src", "dst"]), Table(nodes, ["graph", "node"])
    feature_cols = [c for c in node_table.header if c not in ("graph", "node")]
    if not feature_cols:
        raise DataError(f"{nodes}: no feature columns besides 'graph' and 'node'")
    node_graph, node_id = node_table.numbers("graph", integer=True), node_table.numbers("node", integer=True)
    features = torch.tensor([node_table.numbers(c, integer=False) for c in feature_cols], dtype=torch.float64)
    if len(node_table) and not torch.isfinite(features.float()).all():
        col, row = (~torch.isfinite(features.float())).nonzero()[0].tolist()
        raise DataError(f"{nodes}: row {row + 2}: column '{feature_cols[col]}' overflows float32")
    node_rows: dict[int, list[int]] = {}
    for i, graph in enumerate(node_graph):
        node_rows.setdefault(graph, []).append(i)  # type: ignore[arg-type]
    edge_rows: dict[int, list[int]] = {}
    for i, graph in enumerate(edge_table.numbers("graph", integer=True)):
        edge_rows.setdefault(graph, []).append(i)  # type: ignore[arg-type]
    src, dst = edge_table.numbers("src", integer=True), edge_table.numbers("dst", integer=True)
    label_map = read_labels(Table(labels, ["graph", "label"]), set(node_rows)) if labels is not None else None
    graphs = []
    for graph_id in sorted(node_rows):
        members = sorted(node_rows[graph_id], key=lambda i: node_id[i])
        n = len(members)
        if [node_id[i] for i in members] != list(range(n)):
            raise DataError(f"{nodes}: graph {graph_id} must list nodes 0..{n - 1} exactly once")
        x = features[:, members].T.float().contiguous()
        rows = edge_rows.pop(graph_id, [])
        for i in rows:
            if not (0 <= src[i] < n and 0 <= dst[i] < n):
                raise DataError(f"{edges}: row {i + 2}: edge of graph {graph_id} names a node outside 0..{n - 1}")
        ei = torch.tensor([[src[i] for i in rows], [dst[i] for i in rows]], dtype=torch.long).view(2, len(rows))
        if label_map is not None and graph_id not in label_map:
            raise DataError(f"{labels}: no label for graph {graph_id}")
        y = torch.tensor([label_map[graph_id] if label_map is not None else 0])
        graphs.append(Data(x=x, edge_index=ei, y=y))
    if edge_rows:
        first = next(iter(edge_rows))
        raise DataError(f"{edges}: row {edge_rows[first][0] + 2}: graph {first} has edges but no rows in {nodes} "
                        f"(empty graph / missing features)")
    return graphs


@DATASETS.register("graph_csv", modality="graph", description="graphs from CSV: edge list + node features (+ labels)")
def graph_csv(*, edges: str, nodes: str, labels: str | None = None, test_fraction: float = 0.1,
              data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Paths inside the data root (:func:`omnissl.core.paths.resolve_data_path`); see :func:`read_csv_graphs`."""
    if synthetic is not None:
        fake = synthetic_graphs(synthetic, num_features=4, num_classes=2, seed=seed)
        return graph_bundle(fake, num_classes=2, test_fraction=0.25, seed=seed, description="synthetic CSV graphs")
    edge_path = resolve_data_path(data_root, edges, key="data.edges")
    node_path = resolve_data_path(data_root, nodes, key="data.nodes")
    label_path = resolve_data_path(data_root, labels, key="data.labels") if labels else None
    graphs = read_csv_graphs(edge_path, node_path, label_path)
    return graph_bundle(graphs, test_fraction=test_fraction, seed=seed, description=f"CSV graphs {edges}")
