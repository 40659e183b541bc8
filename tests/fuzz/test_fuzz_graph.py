"""Property-based fuzzing of every graph reader (graph_csv, TU raw folders, the Cora npz): random bytes, truncations
of a valid file, non-finite values and empty files either load faithfully (every row accounted for) or raise a
DataError naming the file — never another exception, never a silent drop."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path

import fuzzing
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnissl_graph.csv_graphs import graph_csv
from omnissl_graph.readers import read_cora_npz, read_tu_graphs

from omnissl.core.errors import DataError

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NON_FINITE = ("nan", "inf", "-inf", "1e400", "NaN")
CSV_FILES = {
    "e.csv": b"graph,src,dst\n0,0,1\n0,1,2\n0,2,0\n1,0,1\n",
    "n.csv": b"graph,node,f0,f1\n0,0,1,0\n0,1,0.5,1\n0,2,1,1\n1,0,1,0\n1,1,0,2.5\n",
    "l.csv": b"graph,label\n0,1\n1,0\n",
}


def _non_finite_cell(draw: st.DrawFn, valid: bytes) -> bytes:
    cells = [i for i in range(len(valid)) if valid[i:i + 1].isdigit()]
    at = draw(st.sampled_from(cells))
    return valid[:at] + draw(st.sampled_from(NON_FINITE)).encode() + valid[at + 1:]


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation, a numeric cell replaced by a non-finite spelling, or an empty file."""
    return fuzzing.damaged(valid, non_finite=_non_finite_cell)


def data_rows(content: bytes) -> int:
    return max(0, len(list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))) - 1)


def assert_names_a_file(error: DataError, *paths: Path) -> None:
    assert any(str(p) in str(error) for p in paths), f"DataError does not name {[p.name for p in paths]}: {error}"


@FAST
@given(data=st.data(), target=st.sampled_from(sorted(CSV_FILES)))
def test_graph_csv_fuzz(data: st.DataObject, target: str) -> None:
    files = {**CSV_FILES, target: data.draw(damaged(CSV_FILES[target]))}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, content in files.items():
            (root / name).write_bytes(content)
        try:
            bundle = graph_csv(edges="e.csv", nodes="n.csv", labels="l.csv", data_root=root, test_fraction=0.5)
        except DataError as error:
            assert_names_a_file(error, *(root / name for name in files))
            return
    graphs = [*bundle.train.graphs, *(bundle.test.graphs if bundle.test else [])]
    assert sum(g.num_nodes for g in graphs) == data_rows(files["n.csv"])  # every node row kept
    assert sum(g.edge_index.shape[1] for g in graphs) == data_rows(files["e.csv"])  # every edge row kept
    assert len(graphs) == data_rows(files["l.csv"])
    assert all(bool(np.isfinite(g.x.numpy()).all()) for g in graphs)


@pytest.fixture(scope="module")
def mutag_raw(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("mutag") / "raw"
    shutil.copytree(data_root / "tu" / "MUTAG" / "raw", raw)
    return raw


@SLOW
@given(data=st.data(), part=st.sampled_from(["A", "graph_indicator", "graph_labels", "node_labels", "edge_labels"]))
def test_tu_raw_folder_fuzz(mutag_raw: Path, data: st.DataObject, part: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw"
        shutil.copytree(mutag_raw, raw)
        path = raw / f"MUTAG_{part}.txt"
        path.write_bytes(data.draw(damaged(path.read_bytes())))
        try:
            graphs = read_tu_graphs(raw, name="MUTAG")
        except DataError as error:
            assert_names_a_file(error, raw)
            return
        lines = {p: (raw / f"MUTAG_{p}.txt").read_bytes().count(b"\n") for p in ("graph_labels", "graph_indicator")}
    assert len(graphs) == lines["graph_labels"] and sum(g.num_nodes for g in graphs) == lines["graph_indicator"]


@pytest.fixture(scope="module")
def cora_arrays(data_root: Path) -> dict[str, np.ndarray]:
    with np.load(data_root / "planetoid" / "Cora" / "cora_numpy.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


@st.composite
def damaged_cora(draw: st.DrawFn, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Array-level damage (``None`` = damage the file's bytes instead): a wrong value, a wrong dtype, a lost key."""
    kind = draw(st.sampled_from(["bytes", "value", "non_finite", "drop", "shorten"]))
    if kind == "bytes":
        return None
    out = {key: value.copy() for key, value in arrays.items()}
    key = draw(st.sampled_from(sorted(out)))
    if kind == "drop":
        del out[key]
    elif kind == "shorten":
        out[key] = out[key][..., : max(0, out[key].shape[-1] - draw(st.integers(1, 3)))]
    elif kind == "non_finite":
        out[key] = out[key].astype(np.float64).reshape(-1)
        out[key][draw(st.integers(0, out[key].size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    else:
        flat = out[key].reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.integers(-5, 5000)) if flat.dtype != bool else True
    return out


@SLOW
@given(data=st.data())
def test_cora_npz_fuzz(cora_arrays: dict[str, np.ndarray], data_root: Path, data: st.DataObject) -> None:
    arrays = data.draw(damaged_cora(cora_arrays))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cora_numpy.npz"
        if arrays is None:
            path.write_bytes(data.draw(damaged((data_root / "planetoid" / "Cora" / "cora_numpy.npz").read_bytes())))
        else:
            np.savez(path, **arrays)
        try:
            graph = read_cora_npz(path)
        except DataError as error:
            assert_names_a_file(error, path)
            return
    assert arrays is not None  # damaged bytes never load
    nodes = len(arrays["y"])
    assert graph.num_nodes == nodes and graph.edge_index.shape[1] == arrays["edge_index"].shape[1]
    assert int(graph.x.sum()) == len(arrays["x_indices"])  # every stored feature kept
    assert all(int(graph[m].sum()) == int(arrays[m].sum()) for m in ("train_mask", "val_mask", "test_mask"))
