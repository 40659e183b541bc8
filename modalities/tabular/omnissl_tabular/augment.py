"""Batched tabular corruptions over ``{"numeric": (B, F_num), "categorical": (B, F_cat)}`` on the batch's device.

- SCARF (Bahri et al., 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature Corruption"):
  for each row pick exactly ``⌊c·F⌋`` of its ``F = F_num + F_cat`` features uniformly at random and replace each by
  the value of that feature in a uniformly drawn train row, i.e. a draw from the feature's empirical marginal.
- Feature masking (Yoon et al., 2020, "VIME: Extending the Success of Self- and Semi-supervised Learning to
  Tabular Domain"): each cell masked independently with probability ``p_m`` and replaced by a marginal draw
  (VIME's pretext generator) or by a constant (the train mean / the ``<unknown>`` category).

Randomness comes from torch's RNG on the batch's device, so runs resume exactly.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from torch import Tensor

from omnissl.core.registry import AUGMENTATIONS
from omnissl.core.types import batch_size_of
from omnissl_tabular.data import TabularMarginals

TabularBatch = dict[str, Tensor]


def split_mask(mask: Tensor, num_numeric: int) -> tuple[Tensor, Tensor]:
    """A ``(B, F)`` mask over all features → its numeric ``(B, F_num)`` and categorical ``(B, F_cat)`` parts."""
    return mask[:, :num_numeric], mask[:, num_numeric:]


def _check(x: Any, op: str) -> TabularBatch:
    if not isinstance(x, dict) or "numeric" not in x or "categorical" not in x:
        raise ValueError(f"{op} expects a dict with 'numeric' (B, F_num) and 'categorical' (B, F_cat) tensors")
    return x


def corrupt(x: TabularBatch, mask: Tensor, replacement: TabularBatch) -> TabularBatch:
    """Where ``mask (B, F)`` is True take ``replacement``'s value, else keep ``x``'s; other keys pass through."""
    numeric_mask, categorical_mask = split_mask(mask, x["numeric"].shape[1])
    out = dict(x)
    out["numeric"] = torch.where(numeric_mask, replacement["numeric"].to(x["numeric"].dtype), x["numeric"])
    out["categorical"] = torch.where(categorical_mask, replacement["categorical"], x["categorical"])
    return out


def exact_count_mask(batch: int, features: int, count: int, device: torch.device) -> Tensor:
    """``(B, F)`` bool with exactly ``count`` True per row, positions uniform (ranks of i.i.d. uniforms)."""
    ranks = torch.rand(batch, features, device=device).argsort(dim=1).argsort(dim=1)
    return ranks < count


def bernoulli_mask(batch: int, features: int, p: float, device: torch.device) -> Tensor:
    """``(B, F)`` bool, each cell True independently with probability ``p`` (VIME's ``m ~ Bern(p_m)``)."""
    return torch.rand(batch, features, device=device) < p


class ScarfCorruption:
    """SCARF's corruption: ``⌊rate·F⌋`` features per row replaced by draws from their train marginals."""

    def __init__(self, rate: float, marginals: TabularMarginals) -> None:
        self.rate, self.marginals = rate, marginals

    def __call__(self, x: Any) -> TabularBatch:
        x = _check(x, "scarf_corruption")
        batch, device = batch_size_of(x), x["numeric"].device
        features = x["numeric"].shape[1] + x["categorical"].shape[1]
        mask = exact_count_mask(batch, features, int(self.rate * features), device)
        return corrupt(x, mask, self.marginals.sample(batch, device))


class FeatureMask:
    """Each cell masked with probability ``p``; masked cells get a marginal draw or the constant fill."""

    def __init__(self, p: float, fill: Literal["marginal", "constant"], marginals: TabularMarginals | None) -> None:
        self.p, self.fill, self.marginals = p, fill, marginals

    def __call__(self, x: Any) -> TabularBatch:
        x = _check(x, "feature_mask")
        batch, device = batch_size_of(x), x["numeric"].device
        features = x["numeric"].shape[1] + x["categorical"].shape[1]
        mask = bernoulli_mask(batch, features, self.p, device)
        if self.fill == "marginal":
            assert self.marginals is not None
            replacement = self.marginals.sample(batch, device)
        else:  # 0 = the train mean after standardisation; 0 = the <unknown> category
            replacement = {"numeric": torch.zeros_like(x["numeric"]), "categorical": torch.zeros_like(x["categorical"])}
        return corrupt(x, mask, replacement)


def _need(marginals: TabularMarginals | None, op: str) -> TabularMarginals:
    if marginals is None:
        raise ValueError(f"{op} draws from the train marginals: use a tabular dataset (it publishes 'marginals')")
    return marginals


@AUGMENTATIONS.register("scarf_corruption", modality="tabular",
                        description="SCARF: replace ⌊c·F⌋ features per row with train-marginal draws")
def scarf_corruption(*, corruption_rate: float = 0.6, marginals: TabularMarginals | None = None) -> Callable[[Any], Any]:
    """Paper default c = 0.6 (Bahri et al., 2022, Sec. 4)."""
    if not 0.0 <= corruption_rate <= 1.0:
        raise ValueError(f"corruption_rate must be in [0, 1], got {corruption_rate}")
    return ScarfCorruption(corruption_rate, _need(marginals, "scarf_corruption"))


@AUGMENTATIONS.register("feature_mask", modality="tabular",
                        description="VIME-style masking: each cell with prob p → marginal draw or constant")
def feature_mask(*, p: float = 0.3, fill: Literal["marginal", "constant"] = "marginal",
                 marginals: TabularMarginals | None = None) -> Callable[[Any], Any]:
    """Paper default p_m = 0.3 (Yoon et al., 2020)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return FeatureMask(p, fill, _need(marginals, "feature_mask") if fill == "marginal" else marginals)
