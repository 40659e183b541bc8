"""Graph augmentations of GraphCL (You et al., NeurIPS 2020, "Graph Contrastive Learning with Augmentations")
and GRACE (Zhu et al., 2020, "Deep Graph Contrastive Representation Learning"), batched over a PyG ``Batch``.

Each op takes the collated input — a ``Batch`` of G graphs, or the node-level dict ``{"nodes", "graph"}`` (one
graph) — and returns a new one of the same form; the input is never modified (a policy applies the ops once per
view to the same batch). Randomness is drawn per graph / node / edge from torch's RNG on the batch's device.
Counts follow GraphCL: an op with ``ratio`` edits ``floor(ratio · n_g)`` nodes (or edges) of each graph ``g``.

Node-level inputs keep their node rows (the batch's ``nodes`` index them): a "dropped" node there loses its
edges and features instead of disappearing. Edges are treated as directed entries of ``edge_index``, as in
GraphCL's and GRACE's code. Edge attributes are not carried (the encoders do not read them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import subgraph as pyg_subgraph

from omnissl.core.registry import AUGMENTATIONS

GraphOp = Callable[[Any], Any]


def unpack(x: Any) -> tuple[Data, Tensor, Tensor, bool]:
    """``(graph, batch (N,), ptr (G+1,), node_level)`` for a ``Batch`` or the node-level dict."""
    if isinstance(x, dict):
        graph = x["graph"]
        n, device = graph.num_nodes, graph.x.device
        return graph, torch.zeros(n, dtype=torch.long, device=device), torch.tensor([0, n], device=device), True
    if isinstance(x, Batch):
        return x, x.batch, x.ptr, False
    raise TypeError(f"graph augmentations take a PyG Batch or a node-level dict, got {type(x).__name__}")


def repack(x: Any, graph: Data) -> Any:
    return {**x, "graph": graph} if isinstance(x, dict) else graph


def replace(graph: Data, **fields: Tensor) -> Data:
    """A shallow copy of ``graph`` with some attributes replaced (the input's tensors are shared, not edited)."""
    out = copy.copy(graph)
    for key, value in fields.items():
        setattr(out, key, value)
    return out


def rank_within(groups: Tensor, num_groups: int) -> Tensor:
    """A uniformly random rank ``0..n_g-1`` of every item inside its group; groups ``(N,)`` → ranks ``(N,)``."""
    keys = groups.double() + torch.rand(groups.shape[0], device=groups.device, dtype=torch.float64)
    order = keys.argsort()
    counts = torch.bincount(groups, minlength=num_groups)
    starts = counts.cumsum(0) - counts
    ranks = torch.empty_like(groups)
    ranks[order] = torch.arange(groups.shape[0], device=groups.device) - starts[groups[order]]
    return ranks


def choose(groups: Tensor, num_groups: int, counts: Tensor) -> Tensor:
    """Bool mask choosing exactly ``counts[g]`` random items of each group ``g``."""
    return rank_within(groups, num_groups) < counts[groups]


def keep_nodes(x: Any, keep: Tensor) -> Any:
    """Keep the nodes where ``keep`` (N,) is True, with the edges among them (relabelled per batch)."""
    graph, batch, ptr, node_level = unpack(x)
    if node_level:  # rows must stay aligned with "nodes": isolate and blank the dropped ones instead
        src, dst = graph.edge_index
        edges = graph.edge_index[:, keep[src] & keep[dst]]
        return repack(x, replace(graph, x=graph.x * keep.unsqueeze(1).to(graph.x.dtype), edge_index=edges))
    edges, _ = pyg_subgraph(keep, graph.edge_index, relabel_nodes=True, num_nodes=batch.shape[0])
    new_batch = batch[keep]
    sizes = torch.bincount(new_batch, minlength=ptr.shape[0] - 1)
    new_ptr = torch.cat([ptr.new_zeros(1), sizes.cumsum(0)])
    return replace(graph, x=graph.x[keep], edge_index=edges, batch=new_batch, ptr=new_ptr)


def _check_ratio(ratio: float, name: str = "ratio") -> None:
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {ratio}")


@AUGMENTATIONS.register("graph_node_drop", modality="graph", description="GraphCL node dropping (ratio of nodes)")
def node_drop(*, ratio: float = 0.2) -> GraphOp:
    """Drop ``floor(ratio·n_g)`` random nodes of each graph (at least one node always stays) and their edges."""
    _check_ratio(ratio)

    def apply(x: Any) -> Any:
        _, batch, ptr, _ = unpack(x)
        sizes = ptr[1:] - ptr[:-1]
        drop = choose(batch, sizes.shape[0], torch.minimum((sizes * ratio).floor().long(), sizes - 1))
        return keep_nodes(x, ~drop)
    return apply


@AUGMENTATIONS.register("graph_subgraph", modality="graph", description="GraphCL subgraph: random neighbourhood expansion")
def subgraph(*, ratio: float = 0.2) -> GraphOp:
    """Keep a connected-as-possible region of ``n_g − floor(ratio·n_g)`` nodes per graph.

    As in GraphCL's ``subgraph``: start at a random node and repeatedly add random frontier neighbours until the
    size is reached; when a component is exhausted, the expansion continues from random unvisited nodes.
    """
    _check_ratio(ratio)

    def apply(x: Any) -> Any:
        graph, batch, ptr, _ = unpack(x)
        num_graphs = ptr.shape[0] - 1
        sizes = ptr[1:] - ptr[:-1]
        target = sizes - (sizes * ratio).floor().long()
        inside = rank_within(batch, num_graphs) == 0  # one random seed node per graph
        src, dst = graph.edge_index
        for _ in range(int(sizes.max())):
            need = target - torch.bincount(batch[inside], minlength=num_graphs)
            if not bool((need > 0).any()):
                break
            frontier = torch.zeros_like(inside)
            frontier[dst[inside[src] & ~inside[dst]]] = True
            stuck = torch.bincount(batch[frontier], minlength=num_graphs) == 0
            frontier |= ~inside & stuck[batch]  # exhausted component: any unvisited node of that graph
            frontier &= need[batch] > 0
            index = frontier.nonzero().flatten()
            picked = choose(batch[index], num_graphs, need)
            inside[index[picked]] = True
        return keep_nodes(x, inside)
    return apply


@AUGMENTATIONS.register("graph_edge_perturb", modality="graph", description="GraphCL edge perturbation (drop + add)")
def edge_perturb(*, ratio: float = 0.2, add: bool = True) -> GraphOp:
    """Remove ``floor(ratio·E_g)`` random edges of each graph and, with ``add``, add as many random edges between
    nodes of the same graph, so each graph keeps its edge count (GraphCL's ``permute_edges``)."""
    _check_ratio(ratio)

    def apply(x: Any) -> Any:
        graph, batch, ptr, _ = unpack(x)
        num_graphs = ptr.shape[0] - 1
        edge_graph = batch[graph.edge_index[0]]
        edge_counts = torch.bincount(edge_graph, minlength=num_graphs)
        drop_counts = (edge_counts * ratio).floor().long()
        drop = choose(edge_graph, num_graphs, drop_counts)
        edges = graph.edge_index[:, ~drop]
        if add and int(drop_counts.sum()):
            owner = torch.repeat_interleave(torch.arange(num_graphs, device=ptr.device), drop_counts)
            size = (ptr[1:] - ptr[:-1])[owner]
            ends = (torch.rand(2, owner.shape[0], device=ptr.device) * size).long().clamp_max(size - 1)
            edges = torch.cat([edges, ends + ptr[owner]], dim=1)
        return repack(x, replace(graph, edge_index=edges))
    return apply


@AUGMENTATIONS.register("graph_edge_drop", modality="graph", description="GRACE edge dropping, each edge with prob p")
def edge_drop(*, p: float = 0.2) -> GraphOp:
    """Remove each edge entry independently with probability ``p`` (GRACE's ``dropout_adj``)."""
    _check_ratio(p, "p")

    def apply(x: Any) -> Any:
        graph = unpack(x)[0]
        keep = torch.rand(graph.edge_index.shape[1], device=graph.edge_index.device) >= p
        return repack(x, replace(graph, edge_index=graph.edge_index[:, keep]))
    return apply


@AUGMENTATIONS.register("graph_attr_mask", modality="graph", description="GraphCL attribute masking of node features")
def attr_mask(*, ratio: float = 0.2, fill: Literal["noise", "zero"] = "noise") -> GraphOp:
    """Replace the whole feature row of ``floor(ratio·n_g)`` random nodes per graph with N(0.5, 0.5²) noise
    (GraphCL's ``mask_nodes``) or zeros."""
    _check_ratio(ratio)

    def apply(x: Any) -> Any:
        graph, batch, ptr, _ = unpack(x)
        sizes = ptr[1:] - ptr[:-1]
        masked = choose(batch, sizes.shape[0], (sizes * ratio).floor().long()).unsqueeze(1)
        feats = graph.x.float()
        values = 0.5 + 0.5 * torch.randn_like(feats) if fill == "noise" else torch.zeros_like(feats)
        return repack(x, replace(graph, x=torch.where(masked, values, feats)))
    return apply


@AUGMENTATIONS.register("graph_feature_mask", modality="graph", description="GRACE feature masking: zero feature columns")
def feature_mask(*, p: float = 0.3) -> GraphOp:
    """Zero each feature *dimension* with probability ``p``, one draw per graph shared by its nodes (GRACE)."""
    _check_ratio(p, "p")

    def apply(x: Any) -> Any:
        graph, batch, ptr, _ = unpack(x)
        feats = graph.x.float()
        keep = torch.rand(ptr.shape[0] - 1, feats.shape[1], device=feats.device) >= p
        return repack(x, replace(graph, x=feats * keep[batch].to(feats.dtype)))
    return apply


@AUGMENTATIONS.register("graph_feature_dropout", modality="graph", description="zero each node-feature entry with prob p")
def feature_dropout(*, p: float = 0.2) -> GraphOp:
    """Element-wise feature dropout without rescaling (a corrupted view, not a regulariser)."""
    _check_ratio(p, "p")

    def apply(x: Any) -> Any:
        graph = unpack(x)[0]
        feats = graph.x.float()
        return repack(x, replace(graph, x=feats * (torch.rand_like(feats) >= p).to(feats.dtype)))
    return apply
