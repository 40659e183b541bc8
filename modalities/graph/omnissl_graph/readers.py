"""Readers for the shipped graph datasets that write nothing, load no pickles and never download.

Why not PyG's ``TUDataset`` / ``Planetoid`` classes: they write ``processed/`` next to ``raw/`` and load it back with
``torch.load(weights_only=False)`` (and ``pre_transform.pt`` always unsafely), and they download whenever a raw
file is missing. An audit (F2) showed that a ``processed/`` folder planted in a predictable cache runs code as the
victim. So TU graphs are parsed straight from the read-only raw folder with PyG's own text parser
(``read_tu_data``, the very function ``TUDataset.process`` calls: same graphs, nothing written or loaded back),
and Cora comes from the data root's numpy copy (``cora_numpy.npz``, ``allow_pickle=False``), because Planetoid's raw
``ind.cora.*`` files are Python pickles (F9): unpickling them needs the explicit ``allow_pickle`` opt-in.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from omnissl.errors import DataError

TU_RAW_FILES = ("A", "graph_indicator", "graph_labels", "node_labels")
PLANETOID_RAW_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
CORA_NPZ_KEYS = ("x_indptr", "x_indices", "x_shape", "y", "edge_index", "train_mask", "val_mask", "test_mask")
MAX_DENSE_FEATURES = 1 << 27  # a crafted x_shape must not make us allocate gigabytes (Cora: 3.9M)
MAX_ONE_HOT = 100_000  # widest label range one-hot encoded (PyG allocates nodes × range)


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


def _int_rows(path: Path) -> list[list[int]]:
    """A TU text file as rows of ints, read the way PyG's ``read_txt_array`` splits it (``\\n``, then ``,``)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: bytes are not valid UTF-8 ({error.reason})") from None
    lines = text.split("\n")
    if lines[-1].strip():  # PyG drops an unterminated last line without a word
        raise DataError(f"{path}: line {len(lines)} has no line end (a truncated file?)")
    rows = []
    for number, line in enumerate(lines[:-1], start=1):
        try:
            rows.append([int(cell) for cell in line.split(",")])
        except ValueError:
            raise DataError(f"{path}: line {number}: expected comma-separated integers, got {line.strip()[:40]!r}") \
                from None
    return rows


def check_tu_raw(raw: Path, *, name: str) -> None:
    """What PyG's TU parser would get wrong without a word: unsorted or gapped graph ids (nodes silently moved to
    another graph), edges naming nodes that do not exist, row counts that disagree, node labels so large that
    their one-hot encoding would exhaust memory."""
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
        if part == "edge_labels" and not (raw / f"{name}_{part}.txt").is_file():
            continue
        found, path = rows(part, None), raw / f"{name}_{part}.txt"
        if len(found) != count:
            raise DataError(f"{path}: {len(found)} rows, expected {count} (one per {part.split('_')[0]})")
        for column in zip(*found):
            if max(column) - min(column) > MAX_ONE_HOT:
                raise DataError(f"{path}: labels span {min(column)}..{max(column)}, too wide to one-hot encode")


def read_tu_graphs(raw: Path, *, name: str) -> list[Data]:
    """``<raw>/<name>_*.txt`` → one ``Data(x, edge_index, y)`` per graph, exactly as ``TUDataset(name)`` yields
    them with its defaults (one-hot node labels, ``use_node_attr=False``; edge attributes dropped)."""
    from torch_geometric.data.separate import separate
    from torch_geometric.io import read_tu_data

    require_files(raw, [f"{name}_{part}.txt" for part in TU_RAW_FILES], hint="TU raw files")
    check_tu_raw(raw, name=name)
    try:
        data, slices, sizes = read_tu_data(str(raw), name)
    except DataError:
        raise
    except Exception as error:  # PyG raises bare errors on malformed raw files: name the folder
        raise DataError(f"{raw}: PyG could not read it ({type(error).__name__}: {error})") from error
    num_graphs = int(slices["x"].numel() - 1)
    num_labels = 0 if data.y is None else int(data.y.numel())
    if num_labels != num_graphs:  # PyG only notices this later, as a slicing RuntimeError (audit F18)
        raise DataError(f"{raw}: {name}_graph_labels.txt has {num_labels} labels but "
                        f"{name}_graph_indicator.txt names {num_graphs} graphs")
    if data.x is not None and sizes["num_node_attributes"] > 0:  # TUDataset(use_node_attr=False) does the same
        data.x = data.x[:, sizes["num_node_attributes"]:]
    graphs = []
    for i in range(num_graphs):
        graph = separate(cls=Data, batch=data, idx=i, slice_dict=slices, decrement=False)
        graph = Data(x=graph.x, edge_index=graph.edge_index, y=graph.y)
        check_graph(graph, f"{raw}: graph {i + 1}")
        graphs.append(graph)
    return graphs


def _npz_array(arrays: np.lib.npyio.NpzFile, key: str, path: Path, *, kind: str, ndim: int) -> np.ndarray:
    if key not in arrays.files:
        raise DataError(f"{path}: missing array '{key}' (has {', '.join(arrays.files)})")
    try:
        value = arrays[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: array '{key}' is unreadable ({error})") from error
    if value.dtype.kind not in kind or value.ndim != ndim:
        raise DataError(f"{path}: array '{key}' must be {ndim}-D of kind '{kind}', got {value.dtype} {value.shape}")
    return value


def read_cora_npz(path: Path) -> Data:
    """``cora_numpy.npz`` (CSR binary features, labels, both-direction edges, public masks; see the data root's
    ``planetoid/PROVENANCE.md``) → the ``Data`` PyG's ``Planetoid('Cora')`` builds, checked for consistency."""
    if not path.is_file():
        raise DataError(f"{path}: not found (the data root's numpy copy of Cora; to read the raw ind.cora.* "
                        f"pickles instead, trust them and set data.allow_pickle: true)")
    try:
        arrays = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from error
    with arrays:
        indptr, indices, shape, y = (_npz_array(arrays, key, path, kind="iu", ndim=n)
                                     for key, n in (("x_indptr", 1), ("x_indices", 1), ("x_shape", 1), ("y", 1)))
        edges = _npz_array(arrays, "edge_index", path, kind="iu", ndim=2)
        masks = {key: _npz_array(arrays, key, path, kind="b", ndim=1) for key in CORA_NPZ_KEYS[5:]}
    if shape.shape != (2,) or int(shape[0]) != len(y) or len(indptr) != len(y) + 1:
        raise DataError(f"{path}: x_shape {shape.tolist()}, x_indptr ({len(indptr)}) and y ({len(y)}) disagree")
    rows, cols = int(shape[0]), int(shape[1])
    if rows == 0 or cols <= 0 or rows * cols > MAX_DENSE_FEATURES:
        raise DataError(f"{path}: x_shape {shape.tolist()} is not a usable feature matrix")
    counts = np.diff(indptr)
    if int(indptr[0]) != 0 or (counts < 0).any() or int(indptr[-1]) != len(indices):
        raise DataError(f"{path}: x_indptr is not a CSR row pointer for {len(indices)} stored features")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= cols):
        raise DataError(f"{path}: x_indices holds a feature id outside 0..{cols - 1}")
    if edges.shape[0] != 2 or (edges.size and (int(edges.min()) < 0 or int(edges.max()) >= rows)):
        raise DataError(f"{path}: edge_index must be (2, E) with node ids in 0..{rows - 1}, got {edges.shape}")
    if int(y.min()) < 0:
        raise DataError(f"{path}: y holds a negative class")
    bad = [key for key, mask in masks.items() if len(mask) != rows]
    if bad:
        raise DataError(f"{path}: {', '.join(bad)} must have one entry per node ({rows})")
    x = torch.zeros(rows, cols)
    row_ids = torch.from_numpy(np.repeat(np.arange(rows), counts))
    x[row_ids, torch.from_numpy(indices.astype(np.int64))] = 1.0
    if int(x.sum()) != len(indices):
        raise DataError(f"{path}: x_indices repeats a feature within a row")
    edge_index = torch.from_numpy(edges.astype(np.int64))
    # PyG's Planetoid orders edges by target, then source; the same order keeps sums bit-identical to it.
    edge_index = edge_index[:, torch.argsort(edge_index[1] * rows + edge_index[0])]
    graph = Data(x=x, edge_index=edge_index, y=torch.from_numpy(y.astype(np.int64)))
    for key, mask in masks.items():
        graph[key] = torch.from_numpy(mask.copy())
    return graph


def read_cora_pickles(raw: Path) -> Data:
    """PyG's ``read_planetoid_data`` on the raw ``ind.cora.*`` files: **unpickles them**, so only behind the
    recipe's explicit ``allow_pickle: true`` (a crafted file runs code as the user)."""
    from torch_geometric.io import read_planetoid_data

    require_files(raw, [f"ind.cora.{part}" for part in PLANETOID_RAW_FILES], hint="Planetoid raw files")
    try:
        return read_planetoid_data(str(raw), "Cora")
    except Exception as error:  # PyG raises bare errors on malformed raw files: name the folder
        raise DataError(f"{raw}: PyG could not read it ({type(error).__name__}: {error})") from error
