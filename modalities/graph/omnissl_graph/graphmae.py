"""GraphMAE (Hou et al., KDD 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders").

Mask a fraction of nodes' input features (mostly with a learnable [MASK] token, a few with other nodes'
features), encode the corrupted graph, *re-mask* the masked nodes' codes before a one-layer GNN decoder, and
score the reconstruction of the original features of masked nodes with the scaled cosine error.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import GCNConv, GINConv
from torch_geometric.utils import add_self_loops, remove_self_loops, softmax

from omnissl.core.errors import IncompatibleError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log, sample_mean
from omnissl.objectives.base import Objective
from omnissl_graph.augment import replace

Decoder = Literal["gat", "gin", "gcn", "linear"]


def sce_loss(prediction: Tensor, target: Tensor, *, alpha: float) -> Tensor:
    """Scaled cosine error, GraphMAE eq. (2): ``mean_i (1 − cos(x_i, z_i))^α`` over ``(M, F)`` rows (float32).
    Ranks mask different numbers of nodes: under DDP this is the rank's share of the global mean over masked nodes."""
    if prediction.shape != target.shape:
        raise ValueError(f"sce_loss shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    cosine = (F.normalize(prediction.float(), dim=-1) * F.normalize(target.float(), dim=-1)).sum(-1)
    return sample_mean((1 - cosine).pow(alpha))


class GATDecoderLayer(nn.Module):
    """Single-head GAT layer (Veličković et al., 2018) ``(N, D) → (N, F)``, aggregated *before* the projection.

    With one head, ``Σ_j α_ij W h_j = W Σ_j α_ij h_j`` and ``a·W h_j = (Wᵀa)·h_j``, so this equals PyG's
    ``GATConv(D, F, heads=1)`` (self-loops, LeakyReLU 0.2, attention dropout, bias) while the per-edge messages
    are ``D`` wide instead of ``F`` (Cora: 512 vs 1,433) and only the requested ``rows`` are projected (GraphMAE
    scores masked nodes only). Feature dropout on the input, as GraphMAE's decoder (``feat_drop``).
    """

    def __init__(self, dim: int, out_dim: int, *, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.lin = nn.Linear(dim, out_dim, bias=False)
        self.att_src, self.att_dst = nn.Parameter(torch.empty(out_dim)), nn.Parameter(torch.empty(out_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.dropout, self.attention_dropout = nn.Dropout(dropout), nn.Dropout(attention_dropout)
        bound = (6 / (out_dim + 1)) ** 0.5  # glorot on the (1, F) attention vectors, as GATConv
        nn.init.uniform_(self.att_src, -bound, bound)
        nn.init.uniform_(self.att_dst, -bound, bound)

    def forward(self, x: Tensor, edge_index: Tensor, rows: Tensor | None = None) -> Tensor:
        x = self.dropout(x)
        edge_index, _ = add_self_loops(remove_self_loops(edge_index)[0], num_nodes=x.shape[0])
        src, dst = edge_index
        scores = x @ torch.stack([self.lin.weight.t() @ self.att_src, self.lin.weight.t() @ self.att_dst], 1)
        logits = F.leaky_relu(scores[src, 0] + scores[dst, 1], 0.2)
        alpha = self.attention_dropout(softmax(logits, dst, num_nodes=x.shape[0]))
        aggregated = torch.zeros_like(x).index_add_(0, dst, x[src] * alpha.unsqueeze(1))
        if rows is not None:
            aggregated = aggregated[rows]
        return self.lin(aggregated) + self.bias


class _Decoder(nn.Module):
    """One GNN layer from code ``(N, D)`` to features ``(N, F)`` (or the ``rows`` asked for) with no output
    activation. GAT: GraphMAE's decoder (one head, feature dropout ``dropout``, attention dropout)."""

    def __init__(self, kind: Decoder, dim: int, out_dim: int, *, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.kind = kind
        if kind == "gat":
            self.layer: nn.Module = GATDecoderLayer(dim, out_dim, dropout=dropout,
                                                    attention_dropout=attention_dropout)
        elif kind == "gin":
            self.layer = GINConv(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim)))
        elif kind == "gcn":
            self.layer = GCNConv(dim, out_dim)
        else:
            self.layer = nn.Linear(dim, out_dim)

    def forward(self, x: Tensor, edge_index: Tensor, rows: Tensor | None = None) -> Tensor:
        if self.kind == "gat":
            return self.layer(x, edge_index, rows)
        out = self.layer(x) if self.kind == "linear" else self.layer(x, edge_index)
        return out if rows is None else out[rows]


class GraphMAE(Objective):
    """Input: the first global view (``augment.global.count: 1`` with no ops = the batch itself).

    Node level: mask candidates are the batch's ``nodes``; graph level: every node of the ``Batch``.
    Shapes: x ``(N, F)`` → codes ``(N, D)`` → decoder ``(N, F)``; loss over the ``M = ⌊rate·candidates⌋`` masked rows.
    """

    def __init__(self, encoder: Encoder, *, num_features: int, mask_rate: float, replace_rate: float, alpha: float,
                 decoder: Decoder, decoder_dropout: float = 0.0, decoder_attention_dropout: float = 0.0) -> None:
        super().__init__(encoder)
        if not hasattr(encoder, "node_embeddings"):
            raise IncompatibleError(f"GraphMAE needs a graph encoder with node_embeddings, got {type(encoder).__name__}")
        if not 0 < mask_rate < 1 or not 0 <= replace_rate < 1:
            raise ValueError(f"need 0 < mask_rate < 1 and 0 ≤ replace_rate < 1, got {mask_rate}, {replace_rate}")
        self.mask_rate, self.replace_rate, self.alpha = mask_rate, replace_rate, alpha
        self.mask_token = nn.Parameter(torch.zeros(1, num_features))
        self.encoder_to_decoder = nn.Linear(encoder.embed_dim, encoder.embed_dim, bias=False)
        self.decoder = _Decoder(decoder, encoder.embed_dim, num_features, dropout=decoder_dropout,
                                attention_dropout=decoder_attention_dropout)

    def corrupt(self, x: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """Return the corrupted features ``(N, F)`` and the masked node ids ``(M,)``."""
        perm = torch.randperm(candidates.numel(), device=x.device)
        masked = candidates[perm[: max(1, int(self.mask_rate * candidates.numel()))]]
        num_noise = int(self.replace_rate * masked.numel())
        order = torch.randperm(masked.numel(), device=x.device)
        token_nodes, noise_nodes = masked[order[: masked.numel() - num_noise]], masked[order[masked.numel() - num_noise:]]
        out = x.clone()
        out[token_nodes] = 0.0
        out[noise_nodes] = x[torch.randint(0, x.shape[0], (num_noise,), device=x.device)]
        out[token_nodes] += self.mask_token.to(out.dtype)
        return out, masked

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        view: Any = views.global_views[0] if views.global_views else views.original
        graph = view["graph"] if isinstance(view, dict) else view
        x = graph.x.float()
        candidates = view["nodes"].unique() if isinstance(view, dict) else torch.arange(x.shape[0], device=x.device)
        corrupted, masked = self.corrupt(x, candidates)
        masked_graph = replace(graph, x=corrupted)  # shallow copy: the batch is not edited
        codes = self.encoder.node_embeddings(masked_graph)  # type: ignore[operator]
        hidden = self.encoder_to_decoder(codes)
        keep = torch.ones(hidden.shape[0], 1, device=hidden.device, dtype=hidden.dtype)
        keep[masked] = 0.0  # re-mask: the decoder must rebuild masked nodes from their neighbours
        reconstruction = self.decoder(hidden * keep, graph.edge_index, masked)  # (M, F): masked rows only
        loss = sce_loss(reconstruction, x[masked], alpha=self.alpha)
        pooled = self.encoder.pool(codes, view)  # type: ignore[operator]
        return ObjectiveOutput(loss=loss, logs={"sce": global_log(loss)}, embeddings=pooled.detach())


@OBJECTIVES.register("graphmae", modality="graph", description="GraphMAE: masked node-feature reconstruction, SCE loss (Hou et al., 2022)")
def build_graphmae(*, encoder: Encoder, num_features: int = 7, mask_rate: float = 0.5, replace_rate: float = 0.05,
                   alpha: float = 3.0, decoder: Decoder = "gat", decoder_dropout: float = 0.2,
                   decoder_attention_dropout: float = 0.1) -> GraphMAE:
    """Cora settings of the paper: mask 0.5, replace 0.05, α = 3, one-layer single-head GAT decoder with the
    encoder's feature/attention dropout (0.2/0.1; the authors' ``in_drop``/``attn_drop``, GAT decoder only).
    ``num_features`` comes from the dataset's input spec."""
    return GraphMAE(encoder, num_features=num_features, mask_rate=mask_rate, replace_rate=replace_rate, alpha=alpha,
                    decoder=decoder, decoder_dropout=decoder_dropout,
                    decoder_attention_dropout=decoder_attention_dropout)
