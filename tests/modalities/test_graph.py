"""Graph plugin: real TU/Cora data through PyG, augmentation invariants, encoders, hand-checked losses, recipes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omnissl_graph import augment as aug
from omnissl_graph.csv_graphs import graph_csv
from omnissl_graph.data import cora, tu_dataset
from omnissl_graph.dgi import dgi_loss
from omnissl_graph.encoders import build_gat, build_gcn, build_gin
from omnissl_graph.evaluation import all_node_embeddings, logistic_regression_public_split, svm_cross_validation
from omnissl_graph.grace import grace_loss
from omnissl_graph.graphcl import graphcl_loss
from omnissl_graph.graphmae import build_graphmae, sce_loss
from torch_geometric.data import Batch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.core.errors import DataError
from omnissl.objectives.contrastive import nt_xent
from omnissl.core.registry import AUGMENTATIONS, load_plugins
from omnissl.train.runner import read_metrics, train

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "graph"


@pytest.fixture(scope="module")
def mutag(data_root: Path):
    return tu_dataset(dataset="MUTAG", data_root=data_root)


@pytest.fixture(scope="module")
def cora_bundle(data_root: Path):
    return cora(data_root=data_root)


@pytest.fixture()
def batch(mutag) -> Batch:
    return mutag.collate([mutag.train[i] for i in range(16)])["x"]


def sizes(b: Batch) -> torch.Tensor:
    return b.ptr[1:] - b.ptr[:-1]


def check_structure(b: Batch) -> None:
    """Edges point inside the batch and never across graphs; ptr/batch agree with x."""
    src, dst = b.edge_index
    assert b.x.shape[0] == b.batch.shape[0] == int(b.ptr[-1])
    if src.numel():
        assert int(b.edge_index.min()) >= 0 and int(b.edge_index.max()) < b.x.shape[0]
        assert torch.equal(b.batch[src], b.batch[dst])
    assert torch.equal(torch.bincount(b.batch, minlength=b.num_graphs), sizes(b))


# ----------------------------------------------------------------------------- data
def test_plugin_loads_through_entry_point():
    assert "graph" in load_plugins()
    for name in ("graph_node_drop", "graph_subgraph", "graph_edge_perturb", "graph_attr_mask", "graph_edge_drop",
                 "graph_feature_mask", "graph_feature_dropout"):
        assert AUGMENTATIONS.get(name).modality == "graph"


def test_mutag_real_files(mutag, data_root: Path):
    graphs = [*mutag.train.graphs, *mutag.test.graphs]
    assert len(graphs) == 188 and mutag.input_spec["num_features"] == 7
    assert sum(g.num_nodes for g in graphs) == 3371 and sum(g.edge_index.shape[1] for g in graphs) == 7442
    assert sum(int(g.y) for g in graphs) == 125  # 125 graphs labelled 1 in MUTAG_graph_labels.txt
    assert not (data_root / "tu" / "MUTAG" / "processed").exists()  # PyG wrote into the cache copy only
    out = mutag.collate([mutag.test[i] for i in range(3)])
    assert out["x"].num_graphs == 3 and out["y"].shape == (3,) and out["index"].tolist() == [0, 1, 2]


def test_cora_public_split_and_collate(cora_bundle, data_root: Path):
    graph = cora_bundle.train.graph
    assert graph.num_nodes == 2708 and graph.edge_index.shape[1] == 10556 and cora_bundle.num_classes == 7
    assert [int(graph[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    assert len(cora_bundle.train) == 1708 and len(cora_bundle.test) == 1000
    out = cora_bundle.collate([cora_bundle.test[i] for i in range(5)])
    assert bool(graph.test_mask[out["x"]["nodes"]].all()) and torch.equal(out["y"], graph.y[out["index"]])
    assert torch.allclose(graph.x.sum(1)[graph.x.sum(1) > 0], torch.ones(1))  # row-normalised bag of words
    assert not (data_root / "planetoid" / "Cora" / "processed").exists()


def test_malformed_tu_files_are_a_data_error(data_root: Path, tmp_path: Path, monkeypatch):
    import shutil

    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(tmp_path / "cache"))
    raw = tmp_path / "tu" / "MUTAG" / "raw"
    shutil.copytree(data_root / "tu" / "MUTAG" / "raw", raw)
    lines = (raw / "MUTAG_A.txt").read_text().splitlines()
    (raw / "MUTAG_A.txt").write_text("\n".join(lines[:10] + ["1, x"] + lines[10:]) + "\n")  # a non-integer id
    with pytest.raises(DataError, match="MUTAG/raw"):
        tu_dataset(dataset="MUTAG", data_root=tmp_path)


@pytest.mark.parametrize("builder", [tu_dataset, cora, graph_csv])
def test_synthetic_bundles_need_no_files(builder):
    kwargs = {"edges": "missing.csv", "nodes": "missing.csv"} if builder is graph_csv else {}
    bundle = builder(synthetic=16, data_root=Path("/nonexistent"), **kwargs)
    assert len(bundle.train) + len(bundle.test) == 16
    out = bundle.collate([bundle.train[i] for i in range(2)])
    assert out["y"].shape == (2,)


def write_csv(tmp_path: Path, edges: str, nodes: str, labels: str = "graph,label\n0,1\n1,0\n") -> dict:
    for name, text in (("e.csv", edges), ("n.csv", nodes), ("l.csv", labels)):
        (tmp_path / name).write_text(text)
    return {"edges": "e.csv", "nodes": "n.csv", "labels": "l.csv", "data_root": tmp_path, "test_fraction": 0.5}


NODES = "graph,node,f0,f1\n0,0,1,0\n0,1,0,1\n0,2,1,1\n1,0,1,0\n1,1,0,0\n"


def test_csv_graphs_read(tmp_path: Path):
    bundle = graph_csv(**write_csv(tmp_path, "graph,src,dst\n0,0,1\n0,1,2\n1,0,1\n", NODES))
    graphs = [*bundle.train.graphs, *(bundle.test.graphs if bundle.test else [])]
    assert sorted(g.num_nodes for g in graphs) == [2, 3] and bundle.input_spec["num_features"] == 2


@pytest.mark.parametrize("edges, nodes, message", [
    ("graph,src,dst\n0,0,1\n0,1,3\n", NODES, "e.csv: row 3"),                      # node 3 of a 3-node graph
    ("graph,src,dst\n0,0,1\n", NODES.replace("1,1,0,0", "1,1,0,"), "row 6"),         # missing feature value
    ("graph,src,dst\n0,0,1\n2,0,1\n", NODES, "graph 2 has edges but no rows"),      # empty graph
    ("graph,src,dst\n0,0,1\n", "graph,node\n0,0\n", "no feature columns"),
])
def test_csv_errors_name_file_and_row(tmp_path: Path, edges: str, nodes: str, message: str):
    with pytest.raises(DataError, match=message):
        graph_csv(**write_csv(tmp_path, edges, nodes))


# ----------------------------------------------------------------------------- augmentations
def test_node_drop_counts_and_structure(batch: Batch):
    before = batch.x.clone(), batch.edge_index.clone()
    out = AUGMENTATIONS.get("graph_node_drop").builder(ratio=0.3)(batch)
    check_structure(out)
    n = sizes(batch)
    assert torch.equal(sizes(out), n - (n * 0.3).floor().long())
    assert out.x.shape[1] == batch.x.shape[1] and out.num_graphs == batch.num_graphs
    assert torch.equal(batch.x, before[0]) and torch.equal(batch.edge_index, before[1])  # input untouched


def test_subgraph_counts_and_connectivity(batch: Batch):
    out = aug.subgraph(ratio=0.4)(batch)
    check_structure(out)
    n = sizes(batch)
    assert torch.equal(sizes(out), n - (n * 0.4).floor().long())
    # MUTAG molecules are connected, so neighbourhood expansion must give a connected subgraph.
    from scipy.sparse.csgraph import connected_components
    from torch_geometric.utils import to_scipy_sparse_matrix

    for g in range(out.num_graphs):
        lo, hi = int(out.ptr[g]), int(out.ptr[g + 1])
        mask = (out.edge_index[0] >= lo) & (out.edge_index[0] < hi)
        adj = to_scipy_sparse_matrix(out.edge_index[:, mask] - lo, num_nodes=hi - lo)
        assert connected_components(adj, directed=False)[0] == 1


@pytest.mark.parametrize("add", [True, False])
def test_edge_perturb_counts(batch: Batch, add: bool):
    out = aug.edge_perturb(ratio=0.25, add=add)(batch)
    check_structure(out)
    e_before = torch.bincount(batch.batch[batch.edge_index[0]], minlength=batch.num_graphs)
    e_after = torch.bincount(out.batch[out.edge_index[0]], minlength=out.num_graphs)
    assert torch.equal(e_after, e_before if add else e_before - (e_before * 0.25).floor().long())
    assert torch.equal(out.x, batch.x)


def test_attr_mask_rows(batch: Batch):
    out = aug.attr_mask(ratio=0.5, fill="zero")(batch)
    changed = (out.x != batch.x).any(1)
    zeroed = (out.x == 0).all(1)
    n = sizes(batch)
    # Exactly floor(0.5·n_g) rows per graph are blanked (one-hot rows are never zero beforehand).
    assert torch.equal(torch.bincount(batch.batch[zeroed], minlength=batch.num_graphs), (n * 0.5).floor().long())
    assert bool((zeroed | ~changed).all()) and torch.equal(out.edge_index, batch.edge_index)
    noisy = aug.attr_mask(ratio=0.5)(batch).x
    rows = (noisy != batch.x).any(1)  # GraphCL noise N(0.5, 0.5²) on the masked rows
    assert int(rows.sum()) == int(zeroed.sum()) and abs(noisy[rows].mean().item() - 0.5) < 0.1


def test_feature_mask_is_per_graph_columns(batch: Batch):
    torch.manual_seed(0)
    out = aug.feature_mask(p=0.5)(batch)
    for g in range(batch.num_graphs):
        rows = batch.batch == g
        dropped = (out.x[rows] != batch.x[rows]).any(0)
        assert torch.equal(out.x[rows][:, dropped], torch.zeros_like(out.x[rows][:, dropped]))
        assert torch.equal(out.x[rows][:, ~dropped], batch.x[rows][:, ~dropped])


def test_edge_drop_and_feature_dropout_rates(cora_bundle):
    torch.manual_seed(0)
    x = cora_bundle.collate(list(range(10)))["x"]
    dropped = aug.edge_drop(p=0.3)(x)
    kept = dropped["graph"].edge_index.shape[1] / x["graph"].edge_index.shape[1]
    assert abs(kept - 0.7) < 0.02 and dropped["nodes"] is x["nodes"]
    assert torch.equal(aug.edge_drop(p=0.0)(x)["graph"].edge_index, x["graph"].edge_index)
    feats = aug.feature_dropout(p=0.5)(x)["graph"].x
    nz = x["graph"].x != 0
    assert abs((feats[nz] == 0).float().mean().item() - 0.5) < 0.02


def test_node_level_node_drop_keeps_rows(cora_bundle):
    x = cora_bundle.collate(list(range(10)))["x"]
    out = aug.node_drop(ratio=0.2)(x)
    graph = out["graph"]
    assert graph.x.shape == x["graph"].x.shape
    assert not bool((x["graph"].x == 0).all(1).any())  # every Cora paper has some words
    isolated = (graph.x == 0).all(1)
    assert int(isolated.sum()) == int(2708 * 0.2)
    assert not bool(torch.isin(graph.edge_index, isolated.nonzero().flatten()).any())


# ----------------------------------------------------------------------------- encoders
def test_gin_shapes_and_readout(batch: Batch):
    encoder = build_gin(num_features=7, hidden=16, layers=3).eval()
    out = encoder(batch)
    assert out.pooled.shape == (16, 48) and out.tokens.shape == (16, int(sizes(batch).max()), 48)
    assert torch.equal((~out.padding_mask).sum(1), sizes(batch))
    assert torch.allclose(out.pooled, out.tokens.sum(1), atol=1e-5)  # sum readout; padding rows are zero


@pytest.mark.parametrize("builder", [build_gcn, build_gat])
def test_node_encoders_on_nodes_and_graphs(builder, cora_bundle, batch: Batch):
    x = cora_bundle.collate([0, 5, 7])["x"]
    small = {"hidden": 16, "heads": 2} if builder is build_gat else {"dims": (16, 8)}
    encoder = builder(num_features=1433, **small).eval()
    out = encoder(x)
    assert out.pooled.shape == (3, encoder.embed_dim)
    assert torch.allclose(out.pooled, encoder.node_embeddings(x["graph"])[[0, 5, 7]])
    on_graphs = builder(num_features=7, **small)(batch)
    assert on_graphs.pooled.shape == (16, encoder.embed_dim)


# ----------------------------------------------------------------------------- losses
def test_graphcl_loss_hand_case():
    # cos: (z1_0,z2_0)=1/√2, (z1_0,z2_1)=0, (z1_1,z2_0)=1/√2, (z1_1,z2_1)=1; τ=0.5
    # ℓ_0 = −√2 + 0, ℓ_1 = −2 + √2  → mean −1 exactly.
    z1, z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    assert graphcl_loss(z1, z2, temperature=0.5).item() == pytest.approx(-1.0, abs=1e-6)


def test_grace_loss_matches_paper_formula():
    torch.manual_seed(0)
    u, v, tau = torch.randn(5, 3), torch.randn(5, 3), 0.4
    cos = lambda a, b: float(torch.dot(a, b) / (a.norm() * b.norm()))

    def ell(a: torch.Tensor, b: torch.Tensor, i: int) -> float:
        pos = math.exp(cos(a[i], b[i]) / tau)
        neg = sum(math.exp(cos(a[i], b[k]) / tau) + math.exp(cos(a[i], a[k]) / tau) for k in range(5) if k != i)
        return -math.log(pos / (pos + neg))

    expected = sum(0.5 * (ell(u, v, i) + ell(v, u, i)) for i in range(5)) / 5
    assert grace_loss(u, v, temperature=tau).item() == pytest.approx(expected, rel=1e-5)
    # Same denominator as NT-Xent over the 2N embeddings: the two must agree.
    assert grace_loss(u, v, temperature=tau).item() == pytest.approx(nt_xent(u, v, temperature=tau).item(), rel=1e-5)


def test_sce_loss_hand_case():
    pred, target = torch.tensor([[1.0, 0.0], [2.0, 2.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # rows: (1 − 1/√2)² and (1 − 1)² → mean ((1 − 1/√2)²)/2
    assert sce_loss(pred, target, alpha=2.0).item() == pytest.approx((1 - 2**-0.5) ** 2 / 2, rel=1e-6)
    assert sce_loss(pred, target, alpha=1.0).item() == pytest.approx((1 - 2**-0.5) / 2, rel=1e-6)


def test_dgi_discriminator_equals_the_bilinear_form_per_graph():
    """The fast ``hᵀ (W s)`` path scores exactly what ``nn.Bilinear(h, s)`` does, each node against its own
    graph's summary (two graphs here, so a summary mix-up would show)."""
    from omnissl_graph.dgi import DGI
    from omnissl_graph.encoders import build_gcn

    torch.manual_seed(0)
    objective = DGI(build_gcn(num_features=5, dims=(8,)))
    nodes, summaries, graph_of = torch.randn(7, 8), torch.randn(2, 8), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    projected = objective.project(summaries)[graph_of]
    expected = objective.weight(nodes, summaries[graph_of]).squeeze(-1)
    assert torch.allclose(objective.discriminate(nodes, projected), expected, atol=1e-5)


def test_dgi_loss_hand_case():
    # BCE: ½[−log σ(2) − log(1 − σ(−1))] = ½[log(1 + e^−2) + log(1 + e^−1)]
    expected = 0.5 * (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)))
    assert dgi_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == pytest.approx(expected, rel=1e-6)
    assert dgi_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_graphmae_corruption_counts(batch: Batch):
    objective = build_graphmae(encoder=build_gin(num_features=7, hidden=8, layers=2), num_features=7, mask_rate=0.5,
                               replace_rate=0.2, decoder="gin")
    with torch.no_grad():
        objective.mask_token.fill_(7.0)  # a value no real or replaced row can hold
    x = batch.x.float()
    corrupted, masked = objective.corrupt(x, torch.arange(x.shape[0]))
    m = int(0.5 * x.shape[0])
    assert masked.numel() == m and masked.unique().numel() == m
    tokens = (corrupted == 7.0).all(1)
    assert int(tokens.sum()) == m - int(0.2 * m) and bool(tokens[masked].sum() == tokens.sum())
    unmasked = torch.ones(x.shape[0], dtype=torch.bool)
    unmasked[masked] = False
    assert torch.equal(corrupted[unmasked], x[unmasked])


# ----------------------------------------------------------------------------- evaluation
def test_svm_cross_validation_separates_and_fails_on_noise():
    torch.manual_seed(0)
    labels = torch.arange(100) % 2
    separable = torch.randn(100, 4) + 4 * labels.unsqueeze(1).float()
    clean = svm_cross_validation(separable, labels, c_grid=(1.0,))
    assert clean["mean"] == 1.0 and clean["inner_cv"] == 1.0
    noise = svm_cross_validation(torch.randn(100, 4), labels, c_grid=(1.0,))
    assert 0.25 < noise["mean"] < 0.75 and len(noise["per_fold"]) == 10
    assert 0.25 < noise["inner_cv"] < 0.75  # the validation score of the C search, read from training folds only


def test_public_split_logistic_regression_on_raw_cora(cora_bundle):
    graph = cora_bundle.train.graph
    raw = logistic_regression_public_split(graph.x, graph, c_grid=(0.1, 1.0))
    assert 0.45 < raw["test"] < 0.70  # raw bag-of-words on the public split: far below GNN figures
    encoder = build_gcn(num_features=1433, dims=(32,))
    assert all_node_embeddings(encoder, graph).shape == (2708, 32)


# ----------------------------------------------------------------------------- recipes: real steps on real data
@pytest.mark.parametrize("recipe, overrides", [
    ("graphcl.yaml", []), ("simclr.yaml", []),
    ("grace.yaml", ["encoder.dims=[64, 32]"]),
    ("graphmae.yaml", ["encoder.hidden=32", "encoder.heads=2"]),
    ("graphmae_mutag.yaml", []),
    ("dgi.yaml", ["encoder.dims=[32]"]),
])
def test_recipe_trains_on_real_data(recipe: str, overrides: list[str], data_root: Path, tmp_path: Path):
    variant = next((o.split("=")[1] for o in overrides if o.startswith("--variant")), None)
    keys = [o for o in overrides if not o.startswith("--")] + ["train.steps=3", "train.log_every=1",
                                                               "train.batch_size=64"]
    assembled = assemble(load_recipe(RECIPES / recipe, keys, variant), root=data_root)
    before = [p.detach().clone() for p in assembled.objective.encoder.parameters()]
    result = train(assembled, tmp_path / "run")
    losses = [row["loss"] for row in read_metrics(tmp_path / "run") if "loss" in row]
    assert result.steps_done == 3 and len(losses) == 3 and all(math.isfinite(v) for v in losses)
    after = list(assembled.objective.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_graphcl_loss_falls_on_mutag(data_root: Path, tmp_path: Path):
    """Learning, not just running: the contrastive loss over the last steps is below the first steps'."""
    torch.manual_seed(0)
    recipe = load_recipe(RECIPES / "graphcl.yaml", ["train.steps=30", "train.log_every=1", "train.batch_size=64"])
    train(assemble(recipe, root=data_root), tmp_path / "run")
    losses = [row["loss"] for row in read_metrics(tmp_path / "run") if "loss" in row]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1
