"""Graph datasets by name (issue 22, item 7): any TU set under ``tu/<NAME>/raw/`` and any Planetoid set under
``planetoid/<Name>/``, with feature widths, edge-attribute presence and class counts read from the files — never
from a table of known names. Synthetic files with new names (``TOY``, ``CiteSeer``) stand in for unseen sets."""

from __future__ import annotations

import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.core.errors import ConfigError, DataError
from omnissl.core.registry import DATASETS, load_plugins
from omnissl.train.runner import read_metrics, train

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "graph"
load_plugins()

# TOY: 8 graphs; node labels 2..6 (one-hot width 5), edge labels 0/1 (width 2), graph labels 3/7/9 (3 classes).
TOY_GRAPHS = [  # (node labels, undirected edges between local 0-based nodes, graph label)
    ([2, 3, 4], [(0, 1), (1, 2)], 3), ([6, 2, 2, 5], [(0, 1), (1, 2), (2, 3), (3, 0)], 7),
    ([4, 4], [(0, 1)], 9), ([3, 5, 6], [(0, 2), (1, 2)], 3), ([2, 2, 3, 3], [(0, 1), (2, 3), (1, 2)], 7),
    ([5, 6, 4], [(0, 1), (0, 2), (1, 2)], 9), ([2, 6], [(0, 1)], 3), ([4, 3, 2], [(0, 1), (1, 2)], 7),
]


def write_tu(root: Path, name: str = "TOY", *, node_labels: bool = True, node_attributes: bool = False,
             edge_labels: bool = True) -> Path:
    """The TU raw text format: 1-based global node ids, one ``A`` line per directed edge, ``\\n`` line ends."""
    raw = root / "tu" / name / "raw"
    raw.mkdir(parents=True)
    files: dict[str, list[str]] = {"A": [], "graph_indicator": [], "graph_labels": [], "node_labels": [],
                                   "edge_labels": [], "node_attributes": []}
    offset = 0
    for g, (labels, edges, label) in enumerate(TOY_GRAPHS, start=1):
        files["graph_labels"].append(str(label))
        for i, node_label in enumerate(labels):
            files["graph_indicator"].append(str(g))
            files["node_labels"].append(str(node_label))
            files["node_attributes"].append(f"{0.5 * node_label:.1f}, {g + i / 10:.1f}")
        for e, (a, b) in enumerate(edges):
            for src, dst in ((a, b), (b, a)):
                files["A"].append(f"{offset + src + 1}, {offset + dst + 1}")
                files["edge_labels"].append(str(e % 2))
        offset += len(labels)
    wanted = {"node_labels": node_labels, "node_attributes": node_attributes, "edge_labels": edge_labels}
    for part, rows in files.items():
        if wanted.get(part, True):
            (raw / f"{name}_{part}.txt").write_text("".join(f"{row}\n" for row in rows))
    return raw


def tu(**params):
    return DATASETS.get("tu").builder(**params)


def planetoid(**params):
    return DATASETS.get("planetoid").builder(**params)


def all_graphs(bundle) -> list:
    return [*bundle.train.graphs, *(bundle.test.graphs if bundle.test else [])]


def files_under(folder: Path) -> list[tuple[Path, int]]:
    return sorted((p, p.stat().st_size) for p in folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- TU by name
def test_a_new_tu_name_loads_with_counts_from_its_files(tmp_path: Path) -> None:
    write_tu(tmp_path)
    before = files_under(tmp_path)
    bundle = tu(dataset="TOY", data_root=tmp_path, test_fraction=0.34)
    graphs = all_graphs(bundle)
    assert len(graphs) == 8 and sum(g.num_nodes for g in graphs) == sum(len(n) for n, _, _ in TOY_GRAPHS)
    assert bundle.input_spec["num_features"] == 5 and bundle.num_classes == 3
    assert bundle.input_spec["num_edge_features"] == 2  # edge labels are present (not used by the encoders)
    assert bundle.input_spec["class_names"] == ["3", "7", "9"]  # the files' own label values, in class order
    assert sorted(int(g.y) for g in graphs) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert files_under(tmp_path) == before  # nothing written next to the raw files


def test_a_new_tu_name_equals_pyg_tudataset(tmp_path: Path) -> None:
    from omnissl_graph.readers import read_tu_graphs
    from torch_geometric.datasets import TUDataset

    write_tu(tmp_path / "ours", node_attributes=True)
    shutil.copytree(tmp_path / "ours" / "tu", tmp_path / "pyg")
    for use_attr, features in ((False, "labels"), (True, "labels+attributes")):
        reference = TUDataset(str(tmp_path / "pyg"), name="TOY", use_node_attr=use_attr, force_reload=True)
        ours = read_tu_graphs(tmp_path / "ours" / "tu" / "TOY" / "raw", name="TOY", node_features=features)
        assert len(ours) == len(reference) == 8
        for mine, theirs in zip(ours, (reference[i] for i in range(len(reference)))):
            assert torch.equal(mine.x, theirs.x) and torch.equal(mine.edge_index, theirs.edge_index)
            assert torch.equal(mine.y, theirs.y)


def test_tu_node_attributes_and_degree_features_are_opt_in(tmp_path: Path) -> None:
    write_tu(tmp_path, node_labels=False, node_attributes=True, edge_labels=False)
    with pytest.raises(DataError, match=r"TOY/raw.*TOY_node_labels\.txt.*node_features"):
        tu(dataset="TOY", data_root=tmp_path, test_fraction=0.34)
    attributes = tu(dataset="TOY", data_root=tmp_path, test_fraction=0.34, node_features="attributes")
    assert attributes.input_spec["num_features"] == 2 and attributes.input_spec["num_edge_features"] == 0
    first = next(g for g in all_graphs(attributes) if g.num_nodes == 3 and float(g.x[0, 0]) == 1.0)
    assert torch.allclose(first.x, torch.tensor([[1.0, 1.0], [1.5, 1.1], [2.0, 1.2]]))  # graph 1's rows, in order
    degree = tu(dataset="TOY", data_root=tmp_path, test_fraction=0.34, node_features="degree")
    assert degree.input_spec["num_features"] == 3  # one-hot degree 0..2 (the largest degree in TOY is 2)
    for graph in all_graphs(degree):
        counts = torch.bincount(graph.edge_index[0], minlength=graph.num_nodes)
        assert torch.equal(graph.x.argmax(1), counts) and torch.equal(graph.x.sum(1), torch.ones(graph.num_nodes))


def test_an_unknown_tu_name_lists_what_the_folder_has(tmp_path: Path) -> None:
    write_tu(tmp_path)
    write_tu(tmp_path, name="OTHER")
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path / 'tu'))}.*no dataset 'MUTANT'.*OTHER, TOY"):
        tu(dataset="MUTANT", data_root=tmp_path)
    with pytest.raises(DataError, match=r"no dataset 'toy'.*did you mean 'TOY'"):
        tu(dataset="toy", data_root=tmp_path)
    with pytest.raises(DataError, match=rf"{re.escape(str(tmp_path / 'nothing' / 'tu'))}: folder not found"):
        tu(dataset="TOY", data_root=tmp_path / "nothing")


@pytest.mark.parametrize("name", ["../TOY", "TOY/raw", "", ".hidden"])
def test_a_tu_name_is_a_folder_name_not_a_path(tmp_path: Path, name: str) -> None:
    write_tu(tmp_path)
    with pytest.raises(ConfigError, match="data.dataset"):
        tu(dataset=name, data_root=tmp_path)


def test_a_synthetic_new_name_needs_no_files() -> None:
    bundle = tu(dataset="TOY", synthetic=12, data_root=Path("/nonexistent"))
    assert len(bundle.train) + len(bundle.test) == 12


@pytest.mark.parametrize("name, features", [("MUTAG", 7), ("PROTEINS", 3), ("NCI1", 37)])
def test_real_tu_counts_come_from_the_files(data_root: Path, name: str, features: int) -> None:
    bundle = tu(dataset=name, data_root=data_root)
    assert bundle.input_spec["num_features"] == features and bundle.num_classes == 2
    assert bundle.input_spec["num_edge_features"] == (4 if name == "MUTAG" else 0)  # MUTAG's 4 bond types
    assert bundle.input_spec["class_names"] == {"MUTAG": ["-1", "1"], "PROTEINS": ["1", "2"], "NCI1": ["0", "1"]}[name]


def test_a_new_tu_name_trains_through_the_shipped_recipe(tmp_path: Path) -> None:
    write_tu(tmp_path)
    keys = ["data.dataset=TOY", "data.test_fraction=0.34", "encoder.hidden=8", "encoder.layers=2",
            "train.steps=2", "train.batch_size=4", "train.log_every=1"]
    result = train(assemble(load_recipe(RECIPES / "graphcl.yaml", keys), root=tmp_path), tmp_path / "run")
    losses = [row["loss"] for row in read_metrics(tmp_path / "run") if "loss" in row]
    assert result.steps_done == 2 and len(losses) == 2 and all(math.isfinite(v) for v in losses)


# ----------------------------------------------------------------------------- Planetoid by name
def planetoid_arrays(*, nodes: int = 12, features: int = 6, classes: int = 3, values: bool = False) -> dict:
    generator = np.random.default_rng(0)
    dense = (generator.random((nodes, features)) < 0.4).astype(np.float32)
    dense[np.arange(nodes), np.arange(nodes) % features] = 1.0  # every node has a feature
    if values:  # PubMed-style TF-IDF weights instead of binary words
        dense *= generator.random((nodes, features)).astype(np.float32) + 0.5
    rows, cols = dense.nonzero()
    ring = np.stack([np.arange(nodes), (np.arange(nodes) + 1) % nodes])
    arrays = {"x_indptr": np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=nodes))]),
              "x_indices": cols.astype(np.int64), "x_shape": np.array([nodes, features]),
              "y": np.arange(nodes) % classes, "edge_index": np.concatenate([ring, ring[::-1]], 1).astype(np.int64),
              "train_mask": np.arange(nodes) < 3, "val_mask": (np.arange(nodes) >= 3) & (np.arange(nodes) < 6),
              "test_mask": np.arange(nodes) >= 8}
    if values:
        arrays["x_data"] = dense[rows, cols]
    return {"dense": dense, **arrays}


def write_planetoid(root: Path, name: str, arrays: dict) -> Path:
    folder = root / "planetoid" / name
    folder.mkdir(parents=True)
    np.savez(folder / f"{name.lower()}_numpy.npz", **{k: v for k, v in arrays.items() if k != "dense"})
    return folder


@pytest.mark.parametrize("name, values", [("CiteSeer", False), ("PubMed", True)])
def test_a_planetoid_npz_loads_by_name(tmp_path: Path, name: str, values: bool) -> None:
    arrays = planetoid_arrays(values=values)
    write_planetoid(tmp_path, name, arrays)
    before = files_under(tmp_path)
    bundle = planetoid(dataset=name, data_root=tmp_path, normalize_features=False)
    graph = bundle.train.graph
    assert torch.equal(graph.x, torch.from_numpy(arrays["dense"])) and graph.y.tolist() == arrays["y"].tolist()
    assert bundle.input_spec["num_features"] == 6 and bundle.num_classes == 3
    assert [int(graph[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == [3, 3, 4]
    assert len(bundle.train) == 8 and len(bundle.test) == 4
    assert files_under(tmp_path) == before


def test_a_planetoid_name_trains_through_the_shipped_recipe(tmp_path: Path) -> None:
    write_planetoid(tmp_path, "CiteSeer", planetoid_arrays())
    keys = ["data.dataset=CiteSeer", "encoder.dims=[8]", "objective.projection_dim=8", "train.steps=2",
            "train.batch_size=8", "train.log_every=1"]
    result = train(assemble(load_recipe(RECIPES / "grace.yaml", keys), root=tmp_path), tmp_path / "run")
    assert result.steps_done == 2


class Payload:
    """Unpickling this creates ``marker``: proof that a file was loaded as a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_raw_planetoid_pickles_by_name_need_the_opt_in(data_root: Path, tmp_path: Path) -> None:
    raw = tmp_path / "planetoid" / "Toy" / "raw"
    raw.mkdir(parents=True)
    for path in (data_root / "planetoid" / "Cora" / "raw").iterdir():
        shutil.copy(path, raw / path.name.replace("ind.cora.", "ind.toy."))
    with pytest.raises(DataError, match=r"planetoid/Toy.*toy_numpy\.npz.*allow_pickle"):
        planetoid(dataset="Toy", data_root=tmp_path)
    before = files_under(tmp_path)
    graph = planetoid(dataset="Toy", data_root=tmp_path, allow_pickle=True).train.graph
    assert graph.num_nodes == 2708 and int(graph.test_mask.sum()) == 1000 and files_under(tmp_path) == before
    marker = tmp_path / "PWNED"
    (raw / "ind.toy.x").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DataError, match="toy_numpy"):
        planetoid(dataset="Toy", data_root=tmp_path)
    assert not marker.exists()


def test_a_planetoid_folder_without_files_names_it(tmp_path: Path) -> None:
    (tmp_path / "planetoid" / "Empty" / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match=r"planetoid/Empty/raw.*missing ind\.empty\.x"):
        planetoid(dataset="Empty", data_root=tmp_path, allow_pickle=True)


def test_an_unknown_planetoid_name_lists_what_the_folder_has(data_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"{re.escape(str(data_root / 'planetoid'))}.*no dataset 'CiteSeer'.*Cora"):
        planetoid(dataset="CiteSeer", data_root=data_root)
    with pytest.raises(ConfigError, match="data.dataset"):
        planetoid(dataset="../Cora", data_root=data_root)


def test_real_cora_by_name_is_the_cora_builder(data_root: Path) -> None:
    by_name = planetoid(dataset="Cora", data_root=data_root).train.graph
    alias = DATASETS.get("cora").builder(data_root=data_root).train.graph
    assert torch.equal(by_name.x, alias.x) and torch.equal(by_name.edge_index, alias.edge_index)
    assert by_name.num_nodes == 2708 and int(by_name.y.max()) + 1 == 7


def test_graphs_without_edges_keep_their_nodes(tmp_path: Path) -> None:
    """PyG's TU slicing gives no entry to graphs after the last edge: a last graph of lone atoms is still read."""
    raw = write_tu(tmp_path, edge_labels=False)
    for part, row in (("graph_indicator", "9"), ("graph_labels", "7"), ("node_labels", "4")):
        with (raw / f"TOY_{part}.txt").open("a") as file:
            file.write(f"{row}\n{row}\n" if part != "graph_labels" else f"{row}\n")
    graphs = all_graphs(tu(dataset="TOY", data_root=tmp_path, test_fraction=0.34, node_features="degree"))
    lone = [g for g in graphs if g.edge_index.shape[1] == 0]
    assert len(graphs) == 9 and len(lone) == 1 and lone[0].num_nodes == 2
    assert lone[0].x.tolist() == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # degree 0


def test_trusted_raw_pickles_convert_once_to_the_pickle_free_npz(data_root: Path, tmp_path: Path) -> None:
    from omnissl_graph.planetoid_files import read_planetoid_pickles, write_planetoid_npz

    folder = tmp_path / "planetoid" / "Cora"
    folder.mkdir(parents=True)
    graph = read_planetoid_pickles(data_root / "planetoid" / "Cora" / "raw", name="Cora")
    write_planetoid_npz(graph, folder / "cora_numpy.npz")
    shipped = planetoid(dataset="Cora", data_root=data_root, normalize_features=False).train.graph
    ours = planetoid(dataset="Cora", data_root=tmp_path, normalize_features=False).train.graph
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(ours[key], shipped[key]), key
    with pytest.raises(DataError, match="already exists"):
        write_planetoid_npz(graph, folder / "cora_numpy.npz")
    graph.x = graph.x * 0.25  # weighted features (PubMed's TF-IDF) keep their values
    write_planetoid_npz(graph, tmp_path / "weighted.npz")
    from omnissl_graph.planetoid_files import read_planetoid_npz

    assert torch.equal(read_planetoid_npz(tmp_path / "weighted.npz").x, graph.x)


# ----------------------------------------------------------------- the other builders that had a fixed list
def test_any_bundled_sklearn_classification_table_loads_by_name() -> None:
    from omnissl_tabular.datasets import sklearn_tabular

    bundle = sklearn_tabular(dataset="digits")  # not in the old breast_cancer | wine | iris list
    assert bundle.num_classes == 10 and len(bundle.train) + len(bundle.test) == 1797
    with pytest.raises(DataError, match=r"data\.dataset: scikit-learn bundles no table 'wines' \(did you mean 'wine'"):
        sklearn_tabular(dataset="wines")
    with pytest.raises(DataError, match="regression table"):
        sklearn_tabular(dataset="diabetes")


def test_an_unknown_ucr_uea_name_lists_what_the_folder_has(tmp_path: Path) -> None:
    from omnissl_timeseries.data import ucr_uea

    for name in ("GunPoint", "MySeries"):
        (tmp_path / "timeseries" / name).mkdir(parents=True)
    with pytest.raises(DataError, match=r"did you mean 'MySeries'.*has: GunPoint, MySeries") as caught:
        ucr_uea(dataset="MySeriez", data_root=tmp_path)
    assert caught.value.missing_path == tmp_path / "timeseries" / "MySeriez"
