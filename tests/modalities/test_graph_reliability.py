"""Graph readers under hostile or broken input (audit F2, F9, F15, F17, F18): nothing cached or unpickled behind the
user's back, no download, and every malformed file a DataError naming the file and row."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from omnissl_graph.csv_graphs import graph_csv
from omnissl_graph.data import cora, tu_dataset

from omnissl.core.errors import DataError
from omnissl.core.paths import outside_paths

CORA_RAW = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class Payload:
    """Unpickling this creates ``marker``: proof that a file was loaded as a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


def copy_mutag(data_root: Path, root: Path) -> Path:
    raw = root / "tu" / "MUTAG" / "raw"
    shutil.copytree(data_root / "tu" / "MUTAG" / "raw", raw)
    return raw


# ----------------------------------------------------------------------------- F2: no cache, no processed/, no download
def test_tu_ignores_a_poisoned_cache_and_writes_nothing(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    """The audit's attack: a processed/ folder planted where the old cache key pointed. It must never be loaded."""
    import hashlib
    import tempfile

    cache, system_tmp, marker = tmp_path / "cache", tmp_path / "systmp", tmp_path / "PWNED"
    system_tmp.mkdir()
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(cache))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    raw = data_root / "tu" / "MUTAG" / "raw"
    files = sorted(p for p in raw.iterdir() if p.is_file())
    key = hashlib.sha1("".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns};" for p in files).encode())
    for base in (cache, system_tmp / "omnissl-cache"):
        planted = base / "graph" / f"tu-MUTAG-{key.hexdigest()[:12]}" / "MUTAG"
        shutil.copytree(raw, planted / "raw")
        (planted / "processed").mkdir()
        for name in ("pre_transform.pt", "pre_filter.pt", "data.pt"):
            torch.save(Payload(marker), planted / "processed" / name)
    before = files_under(tmp_path)
    bundle = tu_dataset(dataset="MUTAG", data_root=data_root)
    assert len(bundle.train) + len(bundle.test) == 188
    assert not marker.exists()
    assert files_under(tmp_path) == before  # nothing written to the cache or the system temp dir


def test_graph_readers_write_nothing_anywhere(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    """With no $OMNISSL_CACHE_DIR, neither ~/.cache nor the shared system temp dir receives any file."""
    import tempfile

    home, system_tmp = tmp_path / "home", tmp_path / "systmp"
    home.mkdir()
    system_tmp.mkdir()
    monkeypatch.delenv("OMNISSL_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    tu_dataset(dataset="MUTAG", data_root=data_root)
    cora(data_root=data_root)
    assert files_under(home) == [] and files_under(system_tmp) == []


def test_tu_missing_raw_files_never_download(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    import torch_geometric.data.dataset as pyg_dataset
    import torch_geometric.datasets.tu_dataset as pyg_tu

    downloads: list[str] = []
    monkeypatch.setattr(pyg_tu.TUDataset, "download", lambda self: downloads.append("download"))
    monkeypatch.setattr(pyg_dataset.Dataset, "_download", lambda self: downloads.append("_download"))
    raw = copy_mutag(data_root, tmp_path)
    (raw / "MUTAG_graph_indicator.txt").unlink()
    with pytest.raises(DataError, match=r"MUTAG/raw.*MUTAG_graph_indicator\.txt") as error:
        tu_dataset(dataset="MUTAG", data_root=tmp_path)
    assert str(tmp_path) in str(error.value) and downloads == []


def test_tu_reader_equals_pyg_tudataset(data_root: Path, tmp_path: Path) -> None:
    """Reading the raw files directly gives PyG's own graphs (checked against TUDataset on a private copy)."""
    from omnissl_graph.readers import read_tu_graphs
    from torch_geometric.datasets import TUDataset

    copy_mutag(data_root, tmp_path)
    reference = TUDataset(str(tmp_path / "tu"), name="MUTAG")
    ours = read_tu_graphs(data_root / "tu" / "MUTAG" / "raw", name="MUTAG")
    assert len(ours) == len(reference) == 188
    for mine, theirs in zip(ours, (reference[i] for i in range(len(reference)))):
        assert torch.equal(mine.x, theirs.x) and torch.equal(mine.edge_index, theirs.edge_index)
        assert torch.equal(mine.y, theirs.y)


def test_tu_truncated_graph_labels_is_a_data_error(data_root: Path, tmp_path: Path) -> None:
    raw = copy_mutag(data_root, tmp_path)
    labels = (raw / "MUTAG_graph_labels.txt").read_text().splitlines()
    (raw / "MUTAG_graph_labels.txt").write_text("\n".join(labels[:-1]) + "\n")
    with pytest.raises(DataError, match=r"MUTAG/raw.*MUTAG_graph_labels\.txt.*187.*188"):
        tu_dataset(dataset="MUTAG", data_root=tmp_path)


# ----------------------------------------------------------------------------- F9: Cora without pickles
def copy_cora(data_root: Path, root: Path, *, npz: bool = True) -> Path:
    folder = root / "planetoid" / "Cora"
    shutil.copytree(data_root / "planetoid" / "Cora" / "raw", folder / "raw")
    if npz:
        shutil.copy(data_root / "planetoid" / "Cora" / "cora_numpy.npz", folder / "cora_numpy.npz")
    return folder


def test_cora_never_unpickles_raw_files(data_root: Path, tmp_path: Path) -> None:
    import pickle

    folder, marker = copy_cora(data_root, tmp_path / "evil"), tmp_path / "PWNED"
    for name in CORA_RAW[:-1]:
        (folder / "raw" / f"ind.cora.{name}").write_bytes(pickle.dumps(Payload(marker)))
    bundle = cora(data_root=tmp_path / "evil")
    assert bundle.train.graph.num_nodes == 2708 and not marker.exists()


def test_cora_npz_is_the_same_graph_as_pyg_planetoid(data_root: Path, tmp_path: Path) -> None:
    """The shipped numpy copy reproduces PyG's Planetoid reading of the raw pickles exactly (trusted shared data)."""
    from torch_geometric.io import read_planetoid_data

    reference = read_planetoid_data(str(data_root / "planetoid" / "Cora" / "raw"), "Cora")
    ours = cora(data_root=data_root, normalize_features=False).train.graph
    assert torch.equal(ours.x, reference.x) and torch.equal(ours.y, reference.y)
    assert torch.equal(ours.edge_index, reference.edge_index)
    for mask in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(ours[mask], reference[mask])
    copy_cora(data_root, tmp_path, npz=False)  # the opt-in reads the pickles only where no npz is
    opted_in = cora(data_root=tmp_path, normalize_features=False, allow_pickle=True).train.graph
    assert torch.equal(opted_in.x, ours.x) and torch.equal(opted_in.edge_index, ours.edge_index)


def test_the_npz_wins_over_pickles_even_with_the_opt_in(data_root: Path, tmp_path: Path) -> None:
    """allow_pickle permits the raw pickles; it never prefers them to a numpy copy that is there."""
    import pickle

    folder, marker = copy_cora(data_root, tmp_path), tmp_path / "PWNED"
    (folder / "raw" / "ind.cora.x").write_bytes(pickle.dumps(Payload(marker)))
    assert cora(data_root=tmp_path, allow_pickle=True).train.graph.num_nodes == 2708 and not marker.exists()


def test_cora_without_npz_needs_the_explicit_opt_in(data_root: Path, tmp_path: Path) -> None:
    copy_cora(data_root, tmp_path, npz=False)
    with pytest.raises(DataError, match=r"cora_numpy\.npz.*allow_pickle"):
        cora(data_root=tmp_path)
    assert cora(data_root=tmp_path, allow_pickle=True).train.graph.num_nodes == 2708


@pytest.mark.parametrize("damage", ["truncate", "drop_key", "bad_index"])
def test_cora_broken_npz_is_a_data_error(data_root: Path, tmp_path: Path, damage: str) -> None:
    import numpy as np

    folder = copy_cora(data_root, tmp_path)
    path = folder / "cora_numpy.npz"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    else:
        arrays = dict(np.load(path))
        if damage == "drop_key":
            del arrays["y"]
        else:
            arrays["edge_index"][0, 7] = 5000
        np.savez(path, **arrays)
    with pytest.raises(DataError, match=r"cora_numpy\.npz"):
        cora(data_root=tmp_path)


# ----------------------------------------------------------------------------- F17 / F18 / F15: graph CSV files
NODES = "graph,node,f0,f1\n0,0,1,0\n0,1,0,1\n0,2,1,1\n1,0,1,0\n1,1,0,0\n"
EDGES = "graph,src,dst\n0,0,1\n0,1,2\n1,0,1\n"
LABELS = "graph,label\n0,1\n1,0\n"


def write_csv(root: Path, *, edges: str = EDGES, nodes: str = NODES, labels: str = LABELS) -> dict:
    for name, text in (("e.csv", edges), ("n.csv", nodes), ("l.csv", labels)):
        (root / name).write_text(text)
    return {"edges": "e.csv", "nodes": "n.csv", "labels": "l.csv", "data_root": root, "test_fraction": 0.5}


@pytest.mark.parametrize("files, message", [
    ({"edges": EDGES.replace("0,1,2", "0,1.7,2")}, r"e\.csv: row 3.*'src'.*1\.7"),               # F17: 1.7 → 1
    ({"nodes": NODES.replace("0,2,1,1", "0,2,abc,1")}, r"n\.csv: row 4.*'f0'.*abc"),             # F18: text feature
    ({"nodes": NODES.replace("0,2,1,1", "0,2,inf,1")}, r"n\.csv: row 4.*'f0'.*inf"),             # non-finite
    ({"labels": "graph,label\n0,1\n1,\n"}, r"l\.csv: row 3.*missing"),                          # F18: missing label
    ({"labels": "graph,label\n0,active\n1,inactive\n"}, r"l\.csv: row 2.*'label'.*active"),     # F18: text label
    ({"labels": LABELS + "2,1\n3,0\n4,1\n"}, r"l\.csv: row 4.*graph 2.*no nodes"),               # F17: unknown graphs
    ({"labels": LABELS + "1,1\n"}, r"l\.csv: graph 1 has two label rows \(rows 3 and 4\)"),    # F17: duplicate
    ({"edges": "graph,src,dst\n0,0,1,9\n"}, r"e\.csv: row 2.*4 fields.*3"),                       # extra field
])
def test_csv_bad_values_name_file_and_row(tmp_path: Path, files: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        graph_csv(**write_csv(tmp_path, **files))


def test_csv_integral_float_ids_and_labels_load_faithfully(tmp_path: Path) -> None:
    bundle = graph_csv(**write_csv(tmp_path, edges=EDGES.replace("0,1,2", "0,1.0,2"), labels="graph,label\n0,1.0\n1,0\n"))
    graphs = sorted([*bundle.train.graphs, *(bundle.test.graphs if bundle.test else [])], key=lambda g: g.num_nodes)
    assert graphs[1].edge_index.tolist() == [[0, 1], [1, 2]] and [int(g.y) for g in graphs] == [0, 1]


def test_csv_paths_stay_inside_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_csv(tmp_path)
    inside = write_csv(root)
    for key in ("edges", "nodes", "labels"):
        with pytest.raises(DataError, match=rf"data\.{key}: path '\.\./"):
            graph_csv(**{**inside, key: f"../{inside[key]}"})
    with outside_paths(True):
        outside = {key: str(tmp_path / inside[key]) for key in ("edges", "nodes", "labels")}
        bundle = graph_csv(**{**inside, **outside})
        assert len(bundle.train) + len(bundle.test or []) == 2


@pytest.mark.parametrize("part, edit, message", [
    ("A", lambda t: t[: len(t) - 3], r"MUTAG_A\.txt: line 7442 has no line end"),              # cut mid-line
    ("graph_indicator", lambda t: t.replace("1\r\n2\r\n", "1\r\n3\r\n", 1),
     r"graph_indicator\.txt: line 18: graph id 3 after 1"),
    ("A", lambda t: "0, 1\r\n" + t, r"MUTAG_A\.txt: line 1: edge \[0, 1\] names a node outside 1\.\.3371"),
    ("node_labels", lambda t: t.replace("0\r\n", "9999999\r\n", 1), r"node_labels\.txt: labels span 0\.\.9999999"),
    ("node_labels", lambda t: t[: t.rindex("\r\n", 0, len(t) - 2) + 2], r"node_labels\.txt: 3370 rows, expected 3371"),
])
def test_tu_raw_files_pyg_would_misread_are_data_errors(data_root: Path, tmp_path: Path, part: str, edit,
                                                        message: str) -> None:
    """PyG's parser drops an unterminated last line and moves nodes between graphs on unsorted ids, silently."""
    raw = copy_mutag(data_root, tmp_path)
    path = raw / f"MUTAG_{part}.txt"
    path.write_bytes(edit(path.read_bytes().decode()).encode())
    with pytest.raises(DataError, match=message):
        tu_dataset(dataset="MUTAG", data_root=tmp_path)
