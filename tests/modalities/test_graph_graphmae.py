"""GraphMAE's GAT decoder (aggregate-then-project) against PyG's GATConv, and the GAT encoder's residual switch."""

from __future__ import annotations

import torch
from omnissl_graph.encoders import build_gat
from omnissl_graph.graphmae import GATDecoderLayer
from torch_geometric.nn import GATConv


def _graph(nodes: int = 12, edges: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, nodes, (2, edges), generator=gen)
    return torch.randn(nodes, 6, generator=gen), torch.cat([edge_index, edge_index.flip(0)], 1)


def test_gat_decoder_layer_equals_pyg_gatconv():
    x, edge_index = _graph()
    ours = GATDecoderLayer(6, 9, dropout=0.0, attention_dropout=0.0)
    reference = GATConv(6, 9, heads=1)
    with torch.no_grad():  # same parameters: the layers differ only in where the projection happens
        reference.lin.weight.copy_(ours.lin.weight)
        reference.att_src.copy_(ours.att_src.view(1, 1, -1))
        reference.att_dst.copy_(ours.att_dst.view(1, 1, -1))
        reference.bias.copy_(torch.randn(9))
        ours.bias.copy_(reference.bias)
    expected = reference(x, edge_index)
    assert torch.allclose(ours(x, edge_index), expected, atol=1e-5)
    rows = torch.tensor([3, 0, 7])
    assert torch.allclose(ours(x, edge_index, rows), expected[rows], atol=1e-5)


def test_gat_decoder_layer_dropout_only_in_training():
    x, edge_index = _graph(seed=1)
    layer = GATDecoderLayer(6, 9, dropout=0.5, attention_dropout=0.5)
    layer.eval()
    assert torch.equal(layer(x, edge_index), layer(x, edge_index))
    layer.train()
    assert not torch.allclose(layer(x, edge_index), layer(x, edge_index))


def test_gat_residual_switch_adds_skip_weights():
    plain = build_gat(num_features=6, hidden=8, heads=2, layers=2)
    skip = build_gat(num_features=6, hidden=8, heads=2, layers=2, residual=True)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(skip) > count(plain)  # GraphMAE's default (no residual) has no skip projection
