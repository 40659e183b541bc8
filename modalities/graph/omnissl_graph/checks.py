"""Checks shared by every graph reader: a graph that cannot be trained on, or a missing raw file, is a DataError
naming where it came from, never a silently dropped graph and never a trigger for PyG's download."""

from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.data import Data

from omnissl.core.errors import DataError


def check_graph(graph: Data, where: str) -> None:
    """Empty graphs, edge ids out of range and missing/non-finite features are errors, never dropped."""
    if graph.x is None or graph.x.ndim != 2:
        raise DataError(f"{where}: node features missing (x must be (num_nodes, F), got {getattr(graph.x, 'shape', None)})")
    n = graph.x.shape[0]
    if n == 0:
        raise DataError(f"{where}: graph has no nodes")
    if not torch.isfinite(graph.x).all():
        row = int((~torch.isfinite(graph.x)).any(1).nonzero()[0])
        raise DataError(f"{where}: node {row} has a missing or non-finite feature")
    ei = graph.edge_index
    if ei is None or ei.ndim != 2 or ei.shape[0] != 2:
        raise DataError(f"{where}: edge_index must be (2, E), got {getattr(ei, 'shape', None)}")
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        bad = int(((ei < 0) | (ei >= n)).any(0).nonzero()[0])
        raise DataError(f"{where}: edge {bad} ({int(ei[0, bad])} → {int(ei[1, bad])}) is out of range for {n} nodes")


def require_files(folder: Path, names: list[str], *, hint: str) -> None:
    """Missing raw files are an error naming the folder, never a trigger for PyG's download."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found ({hint})")
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)} ({hint}; nothing is downloaded)")
