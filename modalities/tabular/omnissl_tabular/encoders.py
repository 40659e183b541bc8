"""Tabular encoders over ``{"numeric": (B, F_num) float, "categorical": (B, F_cat) long}``.

- ``tabular_mlp``: categorical embeddings concatenated with the numerics, then an MLP (the SCARF / VIME encoder).
- ``ft_transformer`` (Gorishniy et al., 2021, "Revisiting Deep Learning Models for Tabular Data"): a per-feature
  tokenizer (numeric ``x_j·W_j + b_j``; categorical ``E_j[c] + b_j``) and a pre-norm transformer with a CLS token.
  It is a :class:`TokenEncoder` with one token per feature, so the core MAE / data2vec work on tabular rows.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from omnissl.core.registry import ENCODERS
from omnissl.nn.transformer import TransformerTrunk
from omnissl.core.types import Encoder, EncoderOutput, TokenEncoder, TokenSequence


def _offsets(cardinalities: Sequence[int], device: torch.device | None = None) -> Tensor:
    """Start index of each categorical column in one shared embedding table."""
    sizes = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long, device=device) if cardinalities else \
        torch.zeros(0, dtype=torch.long, device=device)
    return sizes.cumsum(0)


def _inputs(x: dict[str, Tensor], num_numeric: int, num_categorical: int) -> tuple[Tensor, Tensor]:
    numeric, categorical = x["numeric"], x["categorical"]
    if numeric.shape[-1] != num_numeric or categorical.shape[-1] != num_categorical:
        raise ValueError(f"encoder built for {num_numeric} numeric / {num_categorical} categorical features, got "
                         f"{tuple(numeric.shape)} / {tuple(categorical.shape)}")
    return numeric.float(), categorical.long()


class TabularMLP(Encoder):
    """Categorical columns → ``embedding_dim`` each; concat with numerics → ``depth`` × (Linear, norm, ReLU).

    Input dims ``F_num + F_cat·e``; output pooled ``(B, width)`` (the last hidden layer, as in SCARF's probe).
    """

    def __init__(self, *, num_numeric: int, categorical_cardinalities: Sequence[int], embedding_dim: int, width: int,
                 depth: int, norm: Literal["batch", "layer", "none"], dropout: float) -> None:
        super().__init__()
        self.num_numeric, self.cardinalities = num_numeric, tuple(categorical_cardinalities)
        self.embedding = nn.Embedding(max(1, sum(self.cardinalities)), embedding_dim)
        self.register_buffer("offsets", _offsets(self.cardinalities), persistent=False)
        layers: list[nn.Module] = []
        dim = num_numeric + len(self.cardinalities) * embedding_dim
        if dim == 0:
            raise ValueError("the table has no features")
        for _ in range(depth):
            layers.append(nn.Linear(dim, width))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            elif norm == "layer":
                layers.append(nn.LayerNorm(width))
            layers += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
            dim = width
        self.body = nn.Sequential(*layers)
        self.embed_dim = dim

    def forward(self, x: dict[str, Tensor]) -> EncoderOutput:
        numeric, categorical = _inputs(x, self.num_numeric, len(self.cardinalities))
        embedded = self.embedding(categorical + self.offsets).flatten(1)
        return EncoderOutput(pooled=self.body(torch.cat([numeric, embedded], dim=1)))


@ENCODERS.register("tabular_mlp", modality="tabular", description="MLP with per-column categorical embeddings")
def build_tabular_mlp(*, num_numeric: int = 6, categorical_cardinalities: tuple[int, ...] = (10, 18, 9, 16, 8, 7, 4, 43),
                      embedding_dim: int = 8, width: int = 256, depth: int = 4,
                      norm: Literal["batch", "layer", "none"] = "batch", dropout: float = 0.0) -> Encoder:
    """SCARF's encoder: 4 ReLU layers of 256 units. The defaults' shape is Adult's; the dataset's spec overrides."""
    return TabularMLP(num_numeric=num_numeric, categorical_cardinalities=categorical_cardinalities,
                      embedding_dim=embedding_dim, width=width, depth=depth, norm=norm, dropout=dropout)


class FTTransformer(TokenEncoder):
    """Per-feature tokenizer + CLS + pre-norm transformer blocks; pooled output = final CLS ``(B, dim)``.

    ``tokenize``: ``(B, F)`` features → ``(B, F, dim)`` (the per-feature bias ``b_j`` is the position code);
    ``encode_tokens`` runs on any subset of those tokens (MAE passes only visible ones).
    ``reconstruction_target``: ``(B, F, P)``, ``P = max(1, max cardinality)``: a numeric token's standardised value
    in slot 0 (rest 0), a categorical token's one-hot category, so one per-token regression head fits both.
    """

    def __init__(self, *, num_numeric: int, categorical_cardinalities: Sequence[int], dim: int, depth: int,
                 heads: int, ffn_ratio: float, dropout: float) -> None:
        super().__init__()
        self.num_numeric, self.cardinalities = num_numeric, tuple(categorical_cardinalities)
        self.num_tokens = num_numeric + len(self.cardinalities)
        if self.num_tokens == 0:
            raise ValueError("the table has no features")
        self.embed_dim = dim
        self.numeric_weight = nn.Parameter(torch.empty(num_numeric, dim))
        self.embedding = nn.Embedding(max(1, sum(self.cardinalities)), dim)
        self.register_buffer("offsets", _offsets(self.cardinalities), persistent=False)
        self.bias = nn.Parameter(torch.empty(self.num_tokens, dim))
        self.trunk = TransformerTrunk(dim=dim, depth=depth, heads=heads, mlp_ratio=ffn_ratio, dropout=dropout,
                                      pool="cls")
        for parameter in (self.numeric_weight, self.bias, self.trunk.cls_token):
            # the paper's tokenizer init: U(-1/√d, 1/√d)
            nn.init.uniform_(parameter, -dim ** -0.5, dim ** -0.5)
        nn.init.uniform_(self.embedding.weight, -dim ** -0.5, dim ** -0.5)

    def tokenize(self, x: dict[str, Tensor]) -> TokenSequence:
        numeric, categorical = _inputs(x, self.num_numeric, len(self.cardinalities))
        numeric_tokens = numeric.unsqueeze(-1) * self.numeric_weight            # (B, F_num, dim)
        categorical_tokens = self.embedding(categorical + self.offsets)         # (B, F_cat, dim)
        tokens = torch.cat([numeric_tokens, categorical_tokens], dim=1) + self.bias
        return TokenSequence(tokens=tokens)

    @property
    def reconstruction_dim(self) -> int:
        """``P`` of :meth:`reconstruction_target` (the core MAE sizes its decoder output with it)."""
        return max([1, *self.cardinalities])

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        return self.trunk(sequence, return_hidden_states=return_hidden_states)

    def reconstruction_target(self, x: dict[str, Tensor]) -> Tensor:
        numeric, categorical = _inputs(x, self.num_numeric, len(self.cardinalities))
        width = self.reconstruction_dim
        target = numeric.new_zeros(numeric.shape[0], self.num_tokens, width)
        target[:, : self.num_numeric, 0] = numeric
        if self.cardinalities:
            target[:, self.num_numeric:] = nn.functional.one_hot(categorical, width).to(target.dtype)
        return target


@ENCODERS.register("ft_transformer", modality="tabular",
                   description="FT-Transformer: per-feature tokens + CLS (token outputs for MAE)")
def build_ft_transformer(*, num_numeric: int = 6,
                         categorical_cardinalities: tuple[int, ...] = (10, 18, 9, 16, 8, 7, 4, 43), dim: int = 64,
                         depth: int = 3, heads: int = 8, ffn_ratio: float = 4 / 3, dropout: float = 0.1) -> Encoder:
    """The paper's default FT-T is d=192, 3 blocks, 8 heads, FFN 4/3·d; ``dim=64`` keeps CPU runs short."""
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    return FTTransformer(num_numeric=num_numeric, categorical_cardinalities=categorical_cardinalities, dim=dim,
                         depth=depth, heads=heads, ffn_ratio=ffn_ratio, dropout=dropout)
