"""Denoising autoencoder for tables (Vincent et al., 2008, "Extracting and Composing Robust Features with
Denoising Autoencoders"), with the swap noise of tabular DAEs (Jahrer's Porto Seguro winner, 2018).

Batches ``{"numeric": (B, F_num), "categorical": (B, F_cat)}``. Corruption ``x̃``: each cell is replaced with
probability ``noise_rate`` by a draw from its column's train marginal (``noise: swap`` — the value of that column
in a random training row, so categorical cells stay valid categories), or (``noise: gaussian``) numeric cells get
``N(0, noise_std²)`` added (the columns are standardised) and categorical cells are swapped at ``noise_rate``.
The encoder's pooled code ``h = f(x̃) (B, D)`` is decoded to the **clean** row: numeric values ``(B, F_num)`` by a
linear head (squared error) and each categorical column ``j`` as logits ``(B, C_j)`` (cross-entropy).
Loss: per row the mean over its ``F`` cells of those per-cell losses, then the mean over rows (a rank's share of
the global mean under DDP). All draws from torch's RNG with the batch as dim 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import ConfigError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log, sample_mean
from omnissl.objectives.base import Objective
from omnissl_tabular.augment import bernoulli_mask, corrupt
from omnissl_tabular.data import TabularMarginals


def cell_losses(numeric_pred: Tensor, categorical_logits: Sequence[Tensor], clean: dict[str, Tensor]) -> Tensor:
    """Per-cell reconstruction losses ``(B, F_num + F_cat)``: squared error, then one cross-entropy per column."""
    columns = [(numeric_pred.float() - clean["numeric"].float()).pow(2)]
    columns += [F.cross_entropy(logits.float(), clean["categorical"][:, j], reduction="none").unsqueeze(1)
                for j, logits in enumerate(categorical_logits)]
    return torch.cat(columns, dim=1)


class TabularDAE(Objective):
    def __init__(self, encoder: Encoder, *, noise: Literal["swap", "gaussian"], noise_rate: float, noise_std: float,
                 num_numeric: int, categorical_cardinalities: Sequence[int], marginals: TabularMarginals) -> None:
        super().__init__(encoder)
        self.noise, self.noise_rate, self.noise_std, self.marginals = noise, noise_rate, noise_std, marginals
        self.num_numeric, self.cardinalities = num_numeric, tuple(categorical_cardinalities)
        self.numeric_head = nn.Linear(encoder.embed_dim, num_numeric)
        self.categorical_heads = nn.ModuleList([nn.Linear(encoder.embed_dim, c) for c in self.cardinalities])

    def corrupt(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        batch, device = x["numeric"].shape[0], x["numeric"].device
        mask = bernoulli_mask(batch, self.num_numeric + len(self.cardinalities), self.noise_rate, device)
        if self.noise == "gaussian":
            mask[:, : self.num_numeric] = False
        noisy = corrupt(x, mask, self.marginals.sample(batch, device))
        if self.noise == "gaussian" and self.num_numeric:
            noisy["numeric"] = noisy["numeric"] + self.noise_std * torch.randn_like(noisy["numeric"].float())
        return noisy

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0] if views.global_views else views.original
        h = self.encoder(self.corrupt(x)).pooled
        losses = cell_losses(self.numeric_head(h), [head(h) for head in self.categorical_heads], x)
        loss = sample_mean(losses.mean(dim=1))
        return ObjectiveOutput(loss=loss, embeddings=h.detach(), logs={"reconstruction": global_log(loss)})


@OBJECTIVES.register("tabular_dae", modality="tabular",
                     description="Denoising autoencoder: swap/Gaussian-corrupt cells, reconstruct the clean row (Vincent et al., 2008)")
def build_tabular_dae(*, encoder: Encoder, noise: Literal["swap", "gaussian"] = "swap", noise_rate: float = 0.15,
                      noise_std: float = 0.1, num_numeric: int = 6,
                      categorical_cardinalities: tuple[int, ...] = (10, 18, 9, 16, 8, 7, 4, 43),
                      marginals: TabularMarginals | None = None) -> TabularDAE:
    """Swap noise at 15 % (the Porto Seguro DAE's rate); shape and marginals come from the tabular dataset."""
    if marginals is None:
        raise ConfigError("objective.marginals: tabular_dae draws swap noise from the train marginals: use a "
                          "tabular dataset")
    if not 0.0 <= noise_rate < 1.0:
        raise ConfigError(f"objective.noise_rate: must be in [0, 1), got {noise_rate}")
    if noise_std < 0:
        raise ConfigError(f"objective.noise_std: must be ≥ 0, got {noise_std}")
    return TabularDAE(encoder, noise=noise, noise_rate=noise_rate, noise_std=noise_std, num_numeric=num_numeric,
                      categorical_cardinalities=categorical_cardinalities, marginals=marginals)
