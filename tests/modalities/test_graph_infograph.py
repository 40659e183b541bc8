"""InfoGraph: the JSD local–global loss against a pair-by-pair reading of the paper, its input checks, and learning
on real MUTAG graphs (the DDP equivalence runs in tests/core/test_distributed_objectives.py with every objective)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omnissl_graph.data import cora, tu_dataset
from omnissl_graph.encoders import build_gin
from omnissl_graph.infograph import build_infograph, jsd_local_global_loss
from torch.nn import functional as F

from omnissl.core.config import load_recipe
from omnissl.core.errors import IncompatibleError
from omnissl.core.types import ViewSet
from omnissl.train.assemble import assemble
from omnissl.train.runner import read_metrics, train

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "graph" / "infograph.yaml"


def pairwise_jsd_loss(nodes: torch.Tensor, graphs: torch.Tensor, node_graph: torch.Tensor) -> float:
    """InfoGraph eq. (4), one (node, graph) pair at a time: mean over negatives of sp(−s)+s−log 2 minus the mean
    over positives of log 2 − sp(−s)."""
    positives, negatives = [], []
    for n in range(nodes.shape[0]):
        for g in range(graphs.shape[0]):
            s = float(nodes[n] @ graphs[g])
            if g == int(node_graph[n]):
                positives.append(math.log(2) - F.softplus(torch.tensor(-s)).item())
            else:
                negatives.append(F.softplus(torch.tensor(-s)).item() + s - math.log(2))
    return sum(negatives) / len(negatives) - sum(positives) / len(positives)


def test_jsd_loss_equals_the_pairwise_formula():
    torch.manual_seed(0)
    nodes, graphs = torch.randn(7, 5), torch.randn(3, 5)
    node_graph = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    loss = jsd_local_global_loss(nodes, graphs, node_graph)
    assert loss.item() == pytest.approx(pairwise_jsd_loss(nodes, graphs, node_graph), rel=1e-5)


def test_jsd_loss_prefers_nodes_aligned_with_their_own_graph():
    graphs = torch.eye(3) * 4
    node_graph = torch.tensor([0, 1, 2, 0, 1, 2])
    aligned = jsd_local_global_loss(graphs[node_graph], graphs, node_graph)
    crossed = jsd_local_global_loss(graphs[(node_graph + 1) % 3], graphs, node_graph)
    # aligned: positives score 16 (log 2 − sp(−16) ≈ log 2), negatives 0 (sp(0) − log 2 = 0) → loss ≈ −log 2
    assert aligned.item() == pytest.approx(-math.log(2), abs=1e-3)
    assert crossed.item() > 1.0  # the MI estimate (−loss) is high only when nodes match their own graph


def test_one_graph_has_no_negatives():
    with pytest.raises(ValueError, match="≥ 2 graphs"):
        jsd_local_global_loss(torch.randn(4, 3), torch.randn(1, 3), torch.zeros(4, dtype=torch.long))


def test_node_level_data_is_refused(data_root: Path):
    objective = build_infograph(encoder=build_gin(num_features=1433, hidden=8, layers=2))
    graph = cora(data_root=data_root).train.graph
    view = {"nodes": torch.arange(10), "graph": graph}
    with pytest.raises(IncompatibleError, match="graph-level data"):
        objective(ViewSet(global_views=[view], local_views=[], original=view))


def test_embeddings_are_the_backbone_readout(data_root: Path):
    mutag = tu_dataset(dataset="MUTAG", data_root=data_root)
    batch = mutag.collate([mutag.train[i] for i in range(8)])["x"]
    encoder = build_gin(num_features=7, hidden=8, layers=3)
    out = build_infograph(encoder=encoder)(ViewSet(global_views=[batch], local_views=[], original=batch))
    assert out.embeddings.shape == (8, 24) and torch.allclose(out.embeddings, encoder(batch).pooled)
    assert math.isfinite(out.loss.item()) and out.loss.requires_grad


def test_infograph_learns_on_mutag(data_root: Path, tmp_path: Path):
    """Learning, not just running: the mutual-information estimate over the last steps is above the first steps'."""
    torch.manual_seed(0)
    recipe = load_recipe(RECIPE, ["train.steps=20", "train.log_every=1", "train.batch_size=64"])
    train(assemble(recipe, root=data_root), tmp_path / "run")
    mi = [row["jsd_mi"] for row in read_metrics(tmp_path / "run") if "jsd_mi" in row]
    assert len(mi) == 20 and sum(mi[-5:]) / 5 > sum(mi[:5]) / 5 + 0.05
