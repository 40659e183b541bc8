"""Planetoid citation graphs (Cora, CiteSeer, PubMed, …) from files that run no code, or from the raw pickles
behind an explicit opt-in.

``<name>_numpy.npz`` is read with ``allow_pickle=False`` and every array checked; it reproduces PyG's
``Planetoid(<Name>)`` graph and split (a test compares them on Cora). Planetoid's raw ``ind.<name>.*`` files are
Python pickles (audit F9): a crafted one runs code as the user, so they are read only when the recipe says
``allow_pickle: true`` and no npz is there. Nothing is written, cached or downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from omnissl.core.errors import DataError
from omnissl_graph.checks import require_files

PLANETOID_RAW_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
NPZ_KEYS = ("x_indptr", "x_indices", "x_shape", "y", "edge_index", "train_mask", "val_mask", "test_mask")
MAX_DENSE_FEATURES = 1 << 27  # a crafted x_shape must not make us allocate gigabytes (Cora: 3.9M, PubMed: 9.9M)


def _npz_array(arrays: np.lib.npyio.NpzFile, key: str, path: Path, *, kind: str, ndim: int) -> np.ndarray:
    if key not in arrays.files:
        raise DataError(f"{path}: missing array '{key}' (has {', '.join(arrays.files)})")
    try:
        value = arrays[key]
    except Exception as error:  # BadZipFile, bad CRC, zlib.error, a corrupt header (SyntaxError, TokenError) …
        raise DataError(f"{path}: array '{key}' is unreadable ({type(error).__name__}: {error})") from error
    if value.dtype.kind not in kind or value.ndim != ndim:
        raise DataError(f"{path}: array '{key}' must be {ndim}-D of kind '{kind}', got {value.dtype} {value.shape}")
    return value


def read_planetoid_npz(path: Path) -> Data:
    """``<name>_numpy.npz`` → the ``Data`` PyG's ``Planetoid`` builds, checked for consistency.

    Keys (see the data root's ``planetoid/PROVENANCE.md``): the feature matrix as CSR (``x_indptr``, ``x_indices``,
    ``x_shape``, and optionally ``x_data`` — the stored values, e.g. PubMed's TF-IDF weights; without it every stored
    value is 1, as in Cora's and CiteSeer's binary bag of words), ``y``, both-direction ``edge_index`` and the public
    ``train_mask`` / ``val_mask`` / ``test_mask``."""
    if not path.is_file():
        raise DataError(f"{path}: not found")
    try:
        arrays = np.load(path, allow_pickle=False)
    except Exception as error:  # any failure to open the archive names the file
        raise DataError(f"{path}: not a readable .npz file ({type(error).__name__}: {error})") from error
    with arrays:
        indptr, indices, shape, y = (_npz_array(arrays, key, path, kind="iu", ndim=n)
                                     for key, n in (("x_indptr", 1), ("x_indices", 1), ("x_shape", 1), ("y", 1)))
        edges = _npz_array(arrays, "edge_index", path, kind="iu", ndim=2)
        masks = {key: _npz_array(arrays, key, path, kind="b", ndim=1) for key in NPZ_KEYS[5:]}
        values = _npz_array(arrays, "x_data", path, kind="f", ndim=1) if "x_data" in arrays.files else None
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
    if values is not None and (len(values) != len(indices) or not np.isfinite(values).all()):
        raise DataError(f"{path}: x_data must hold one finite value per x_indices entry ({len(indices)}), "
                        f"got {len(values)} values")
    if edges.shape[0] != 2 or (edges.size and (int(edges.min()) < 0 or int(edges.max()) >= rows)):
        raise DataError(f"{path}: edge_index must be (2, E) with node ids in 0..{rows - 1}, got {edges.shape}")
    if int(y.min()) < 0:
        raise DataError(f"{path}: y holds a negative class")
    bad = [key for key, mask in masks.items() if len(mask) != rows]
    if bad:
        raise DataError(f"{path}: {', '.join(bad)} must have one entry per node ({rows})")
    row_ids = torch.from_numpy(np.repeat(np.arange(rows), counts))
    col_ids = torch.from_numpy(indices.astype(np.int64))
    if torch.unique(row_ids * cols + col_ids).numel() != len(indices):
        raise DataError(f"{path}: x_indices repeats a feature within a row")
    x = torch.zeros(rows, cols)
    x[row_ids, col_ids] = 1.0 if values is None else torch.from_numpy(values.astype(np.float32))
    edge_index = torch.from_numpy(edges.astype(np.int64))
    # PyG's Planetoid orders edges by target, then source; the same order keeps sums bit-identical to it.
    edge_index = edge_index[:, torch.argsort(edge_index[1] * rows + edge_index[0])]
    graph = Data(x=x, edge_index=edge_index, y=torch.from_numpy(y.astype(np.int64)))
    for key, mask in masks.items():
        graph[key] = torch.from_numpy(mask.copy())
    return graph


def read_planetoid_pickles(raw: Path, *, name: str) -> Data:
    """PyG's ``read_planetoid_data`` on the raw ``ind.<name>.*`` files: **unpickles them**, so only behind the
    recipe's explicit ``allow_pickle: true`` (a crafted file runs code as the user)."""
    from torch_geometric.io import read_planetoid_data

    require_files(raw, [f"ind.{name.lower()}.{part}" for part in PLANETOID_RAW_FILES], hint="Planetoid raw files")
    try:
        return read_planetoid_data(str(raw), name)
    except Exception as error:  # PyG raises bare errors on malformed raw files: name the folder
        raise DataError(f"{raw}: PyG could not read it ({type(error).__name__}: {error})") from error


def write_planetoid_npz(graph: Data, path: Path) -> Path:
    """Writes ``graph`` (e.g. from :func:`read_planetoid_pickles` on raw files you trust) as the pickle-free npz this
    module reads, so later runs need no ``allow_pickle``. Refuses to replace an existing file."""
    if path.exists():
        raise DataError(f"{path}: already exists (remove it first to write a new copy)")
    rows, cols = graph.x.nonzero(as_tuple=True)  # row-major order: a valid CSR layout
    indptr = np.concatenate([[0], np.bincount(rows.numpy(), minlength=graph.num_nodes).cumsum()])
    binary = bool(((graph.x == 0) | (graph.x == 1)).all())
    values = {} if binary else {"x_data": graph.x[rows, cols].numpy()}
    with path.open("xb") as file:
        np.savez(file, x_indptr=indptr, x_indices=cols.numpy(), x_shape=np.array(graph.x.shape), y=graph.y.numpy(),
                 edge_index=graph.edge_index.numpy(), train_mask=graph.train_mask.numpy(),
                 val_mask=graph.val_mask.numpy(), test_mask=graph.test_mask.numpy(), **values)
    return path


def read_cora_npz(path: Path) -> Data:
    """Cora's ``cora_numpy.npz`` (kept for callers of the Cora-only reader)."""
    return read_planetoid_npz(path)


def read_cora_pickles(raw: Path) -> Data:
    """Cora's raw pickles (kept for callers of the Cora-only reader); see :func:`read_planetoid_pickles`."""
    return read_planetoid_pickles(raw, name="Cora")
