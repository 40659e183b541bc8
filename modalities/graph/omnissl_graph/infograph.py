"""InfoGraph (Sun et al., ICLR 2020, "InfoGraph: Unsupervised and Semi-supervised Graph-Level Representation
Learning via Mutual Information Maximization").

Maximise the Jensen–Shannon mutual-information estimate between every node ("patch") embedding and the embedding
of the graph it belongs to: a (node, own graph) pair is positive, a (node, other graph of the batch) pair is
negative. No augmentation and no corruption: the other graphs of the batch are the negatives. Under DDP every rank
scores its nodes against the graphs of the **global** batch (``gather_cat``), and both expectations are each rank's
share of the global means, so the loss is the one-process loss of the global batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.errors import IncompatibleError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log, masked_share, own_rows
from omnissl.objectives.base import Objective
from omnissl_graph.augment import unpack

LOG2 = math.log(2.0)


class FeedForward(nn.Module):
    """InfoGraph's discriminator embedding ``(*, D) → (*, D)``: three Linear+ReLU layers beside a linear shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(),
                                   nn.Linear(dim, dim), nn.ReLU())
        self.shortcut = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x) + self.shortcut(x)


def jsd_local_global_loss(nodes: Tensor, graphs: Tensor, node_graph: Tensor) -> Tensor:
    """InfoGraph eq. (4) with the JSD estimator, as a loss to minimise: ``E_neg[sp(-s)+s-log2] − E_pos[log2-sp(-s)]``.

    nodes ``(N, D)``, graphs ``(G, D)`` (every graph of the global batch), node_graph ``(N,)``: the row of each node's
    own graph in ``graphs``. Scores ``s = nodes @ graphs.T`` ``(N, G)``; the positive mean runs over the ``N`` own
    pairs, the negative mean over the ``N·(G−1)`` others (rank shares of the global means under DDP).
    """
    if graphs.shape[0] < 2:
        raise ValueError(f"InfoGraph needs ≥ 2 graphs in the (global) batch for negatives, got {graphs.shape[0]}")
    scores = nodes.float() @ graphs.float().T
    own = F.one_hot(node_graph, graphs.shape[0]).bool()
    positive = (LOG2 - F.softplus(-scores[own])).sum()
    others = scores[~own]
    negative = (F.softplus(-others) + others - LOG2).sum()
    count = torch.tensor(float(nodes.shape[0]), device=scores.device)
    return (masked_share(negative, count * (graphs.shape[0] - 1)) - masked_share(positive, count))


class InfoGraph(Objective):
    """Views: the first global view (or the batch) — a ``Batch`` of G graphs. Node embeddings ``(N, D)`` and their
    sum readout ``(G, D)`` (with ``jumping``, every layer concatenated: D = hidden · layers) go through the local
    and global :class:`FeedForward` before scoring; the backbone's pooled readout is what evaluation sees."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__(encoder)
        if not hasattr(encoder, "node_embeddings"):
            raise IncompatibleError(f"InfoGraph needs a graph encoder with node_embeddings, got {type(encoder).__name__}")
        self.local_head = FeedForward(encoder.embed_dim)
        self.global_head = FeedForward(encoder.embed_dim)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        view: Any = views.global_views[0] if views.global_views else views.original
        graph, batch, _ptr, node_level = unpack(view)
        if node_level:
            raise IncompatibleError("InfoGraph contrasts graphs of a batch: it needs graph-level data (e.g. TU), "
                                    "not the nodes of one graph")
        nodes = self.encoder.node_embeddings(graph)  # type: ignore[operator]
        pooled = self.encoder.pool(nodes, view)  # type: ignore[operator]  # (G, D)
        local_graphs = self.global_head(pooled)
        offset = own_rows(local_graphs.shape[0], device=local_graphs.device).start  # this rank's first global graph
        loss = jsd_local_global_loss(self.local_head(nodes), gather_cat(local_graphs), batch + offset)
        return ObjectiveOutput(loss=loss, logs={"jsd_mi": global_log(-loss)}, embeddings=pooled.detach())


@OBJECTIVES.register("infograph", modality="graph",
                     description="InfoGraph: node–graph mutual information over the batch (Sun et al., 2020)")
def build_infograph(*, encoder: Encoder) -> InfoGraph:
    """Paper (TU): GIN 5 layers × 32 units with readout over layers, sum pooling; Adam lr 1e-3, batch 128,
    20 epochs; local and global discriminators of three layers with a linear shortcut; JSD estimator."""
    return InfoGraph(encoder)
