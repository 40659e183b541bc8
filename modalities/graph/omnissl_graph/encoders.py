"""Graph encoders on PyG convolutions: GIN (graph level), GCN and GAT (node level).

Every encoder accepts both input forms of :mod:`omnissl_graph.data` and returns
- for a ``Batch`` of G graphs: pooled ``(G, D)`` = readout of node embeddings, tokens ``(G, N_max, D)`` (the
  graph's nodes, dense) with ``padding_mask (G, N_max)`` True at padding;
- for a node-level dict: pooled ``(B, D)`` = the embeddings of the requested ``nodes`` (tokens ``(B, 1, D)``).
``node_embeddings(graph) -> (num_nodes, D)`` is what node-level objectives (GRACE, GraphMAE) read;
``in_dim`` is the input feature width (GraphMAE's [MASK] token and reconstruction target).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import GATConv, GCNConv, GINConv, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.utils import to_dense_batch

from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput

Readout = Literal["sum", "mean", "max"]
_POOL = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}
_ACT = {"relu": nn.ReLU, "prelu": nn.PReLU, "elu": nn.ELU}


class GraphEncoder(Encoder):
    """Shared forward: message passing → per-node ``(N, D)`` → readout (graphs) or row selection (nodes).

    Subclasses fill ``self.convs`` and implement ``layer_outputs(x, edge_index) -> list[(N, d_l)]``.
    ``jumping=True`` concatenates every layer's output (InfoGraph/GraphCL "readout over layers").
    """

    output_kinds = frozenset({"pooled", "tokens"})

    def __init__(self, *, in_dim: int, readout: Readout, jumping: bool, input_dropout: float) -> None:
        super().__init__()
        self.in_dim, self.readout, self.jumping = in_dim, readout, jumping
        self.input_dropout = nn.Dropout(input_dropout)

    def layer_outputs(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def node_embeddings(self, graph: Any) -> Tensor:
        """``graph`` (``Data``/``Batch`` with ``x (N, F)``, ``edge_index (2, E)``) → ``(N, embed_dim)``."""
        x = graph.x.float()
        if x.shape[1] != self.in_dim:
            raise ValueError(f"graph has {x.shape[1]} node features, the encoder was built for {self.in_dim}")
        outputs = self.layer_outputs(self.input_dropout(x), graph.edge_index)
        return torch.cat(outputs, dim=1) if self.jumping else outputs[-1]

    def pool(self, nodes: Tensor, x: Any) -> Tensor:
        """Per-node ``(N, D)`` → pooled rows: the requested nodes (node level) or a readout per graph."""
        if isinstance(x, dict):
            return nodes[x["nodes"]]
        return _POOL[self.readout](nodes, x.batch, x.num_graphs)

    def forward(self, x: Any) -> EncoderOutput:
        if isinstance(x, dict):  # node level: one graph, rows for the requested nodes
            rows = self.pool(self.node_embeddings(x["graph"]), x)
            return EncoderOutput(pooled=rows, tokens=rows.unsqueeze(1))
        nodes = self.node_embeddings(x)
        tokens, present = to_dense_batch(nodes, x.batch, batch_size=x.num_graphs)
        return EncoderOutput(pooled=self.pool(nodes, x), tokens=tokens, padding_mask=~present)


class GIN(GraphEncoder):
    """GIN (Xu et al., ICLR 2019) as in InfoGraph/GraphCL's unsupervised TU encoder: each layer
    ``BN(ReLU(GINConv(MLP: Linear → ReLU → Linear)))``; graph embedding = readout of every layer, concatenated
    (``embed_dim = hidden · layers``)."""

    def __init__(self, *, in_dim: int, hidden: int, layers: int, readout: Readout, jumping: bool,
                 input_dropout: float) -> None:
        super().__init__(in_dim=in_dim, readout=readout, jumping=jumping, input_dropout=input_dropout)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for layer in range(layers):
            mlp = nn.Sequential(nn.Linear(in_dim if layer == 0 else hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            self.convs.append(GINConv(mlp))
            self.norms.append(nn.BatchNorm1d(hidden))
        self.embed_dim = hidden * layers if jumping else hidden

    def layer_outputs(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:
        outputs = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(F.relu(conv(x, edge_index)))
            outputs.append(x)
        return outputs


class ConvStack(GraphEncoder):
    """Node-level encoders: ``convs[i]`` then ``acts[i]``, dropout before every layer but the first."""

    convs: nn.ModuleList
    acts: nn.ModuleList
    dropout: nn.Dropout

    def layer_outputs(self, x: Tensor, edge_index: Tensor) -> list[Tensor]:
        outputs = []
        for i, (conv, act) in enumerate(zip(self.convs, self.acts)):
            x = act(conv(self.dropout(x) if i else x, edge_index))
            outputs.append(x)
        return outputs


class GCN(ConvStack):
    """GCN (Kipf & Welling, ICLR 2017) stack ``act(GCNConv)`` as in GRACE/DGI; dims ``in → hidden… → out``."""

    def __init__(self, *, in_dim: int, dims: tuple[int, ...], activation: str, readout: Readout, jumping: bool,
                 input_dropout: float, dropout: float) -> None:
        super().__init__(in_dim=in_dim, readout=readout, jumping=jumping, input_dropout=input_dropout)
        widths = [in_dim, *dims]
        self.convs = nn.ModuleList([GCNConv(a, b, cached=False) for a, b in zip(widths[:-1], widths[1:])])
        self.acts = nn.ModuleList([_ACT[activation]() for _ in dims])
        self.dropout = nn.Dropout(dropout)
        self.embed_dim = sum(dims) if jumping else dims[-1]


class GAT(ConvStack):
    """GAT (Veličković et al., ICLR 2018) as GraphMAE's encoder: ``layers`` × GATConv with ``heads`` heads
    concatenated (each ``hidden/heads`` wide), ELU/PReLU between, attention dropout; ``residual`` adds a linear
    skip per layer (GraphMAE's ``--residual``, off in its Cora/CiteSeer/PubMed runs)."""

    def __init__(self, *, in_dim: int, hidden: int, heads: int, layers: int, activation: str, readout: Readout,
                 jumping: bool, input_dropout: float, attention_dropout: float, dropout: float,
                 residual: bool = False) -> None:
        super().__init__(in_dim=in_dim, readout=readout, jumping=jumping, input_dropout=input_dropout)
        if hidden % heads:
            raise ValueError(f"hidden {hidden} must be a multiple of heads {heads}")
        self.convs = nn.ModuleList([
            GATConv(in_dim if i == 0 else hidden, hidden // heads, heads=heads, dropout=attention_dropout,
                    residual=residual)
            for i in range(layers)
        ])
        self.acts = nn.ModuleList([_ACT[activation]() for _ in range(layers)])
        self.dropout = nn.Dropout(dropout)
        self.embed_dim = hidden * layers if jumping else hidden


@ENCODERS.register("gin", modality="graph", description="GIN with readout over layers (InfoGraph/GraphCL)")
def build_gin(*, num_features: int = 7, hidden: int = 32, layers: int = 5, readout: Readout = "sum",
              jumping: bool = True, input_dropout: float = 0.0) -> Encoder:
    """GraphCL/InfoGraph TU defaults: 5 layers × 32 hidden, sum readout, concatenated → 160-d graph embeddings."""
    if layers < 1 or hidden < 1:
        raise ValueError(f"layers and hidden must be ≥ 1, got {layers}, {hidden}")
    return GIN(in_dim=num_features, hidden=hidden, layers=layers, readout=readout, jumping=jumping,
               input_dropout=input_dropout)


@ENCODERS.register("gcn", modality="graph", description="GCN node encoder (GRACE/DGI), mean readout for graphs")
def build_gcn(*, num_features: int = 1433, dims: tuple[int, ...] = (256, 128), activation: Literal["relu", "prelu", "elu"] = "relu",
              readout: Readout = "mean", jumping: bool = False, input_dropout: float = 0.0,
              dropout: float = 0.0) -> Encoder:
    """GRACE on Cora: 2 layers, 2·128 → 128, ReLU."""
    if not dims:
        raise ValueError("dims needs at least one layer width")
    return GCN(in_dim=num_features, dims=list(dims), activation=activation, readout=readout, jumping=jumping,
               input_dropout=input_dropout, dropout=dropout)


@ENCODERS.register("gat", modality="graph", description="GAT node encoder (GraphMAE), mean readout for graphs")
def build_gat(*, num_features: int = 1433, hidden: int = 512, heads: int = 4, layers: int = 2,
              activation: Literal["relu", "prelu", "elu"] = "prelu", readout: Readout = "mean", jumping: bool = False,
              input_dropout: float = 0.2, attention_dropout: float = 0.1, dropout: float = 0.2,
              residual: bool = False) -> Encoder:
    """GraphMAE on Cora: 2 layers, 4 heads, 512 hidden, PReLU, feature dropout 0.2, attention dropout 0.1, no
    residual (the authors' ``configs.yml`` leaves ``--residual`` off; the skip also doubles layer 1's matmuls)."""
    return GAT(in_dim=num_features, hidden=hidden, heads=heads, layers=layers, activation=activation,
               readout=readout, jumping=jumping, input_dropout=input_dropout, attention_dropout=attention_dropout,
               dropout=dropout, residual=residual)
