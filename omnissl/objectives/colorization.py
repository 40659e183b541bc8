"""Colorization as classification (Zhang et al., 2016, "Colorful Image Colorization"), kept small.

The view ``x (B, 3, H, W)`` (sRGB; uint8 0–255 or float 0–1) is converted to CIE Lab (D65). The encoder sees the
lightness only, ``L`` replicated to 3 channels in the input's dtype (so any RGB image encoder works unchanged), and
predicts the colour: the ``ab`` plane is quantised on a grid of ``ab_bin``-wide square bins over [−110, 110)²
(``K = (220/ab_bin)²`` classes; the paper uses 10-wide bins and keeps the 313 in gamut) and the target of each
cell of a coarse ``grid × grid`` map is the bin nearest to the cell's mean ``ab``. A linear head on the pooled
output ``(B, D)`` gives ``(B, grid², K)`` logits (an "upsampled pooled map" in place of the paper's per-pixel
dilated-conv decoder). Loss: cross-entropy averaged over the ``B·grid²`` cells.

Simplifications (documented in docs/methods.md): hard nearest-bin targets instead of the paper's soft encoding
over 5 neighbours (σ = 5); no class rebalancing (λ = 0.5); a coarse output map instead of 1/4-resolution pixels;
every bin of the square kept (out-of-gamut bins simply never appear as targets).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import DataError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log
from omnissl.objectives._pretext import check_image, classification_loss
from omnissl.objectives.base import Objective
from omnissl.objectives.multiview import need_views

_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] ``(B, 3, H, W)`` → CIE Lab ``(B, 3, H, W)`` (L in [0, 100], a, b roughly in [−110, 110])."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB_TO_XYZ.to(rgb), linear) / _WHITE_D65.to(rgb).view(1, 3, 1, 1)
    delta = 6 / 29
    f = torch.where(xyz > delta**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * delta**2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def ab_classes(ab: Tensor, *, bin_size: float) -> Tensor:
    """``ab (…, 2)`` → the index of the nearest bin centre on the ``bin_size`` grid over [−110, 110)², row-major
    over (a, b)."""
    per_axis = round(220 / bin_size)
    index = ((ab + 110) / bin_size).floor().long().clamp(0, per_axis - 1)
    return index[..., 0] * per_axis + index[..., 1]


class Colorization(Objective):
    def __init__(self, encoder: Encoder, *, ab_bin: float, grid: int) -> None:
        super().__init__(encoder)
        self.ab_bin, self.grid = ab_bin, grid
        self.classes = round(220 / ab_bin) ** 2
        self.head = nn.Linear(encoder.embed_dim, grid * grid * self.classes)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's grey input (dtype of ``x``) and the ``(B·grid²,)`` colour-class targets."""
        check_image(x, "colorization")
        if x.shape[1] != 3:
            raise DataError(f"colorization: needs RGB images (B, 3, H, W), got {tuple(x.shape)}")
        rgb = x.float() / 255 if not x.is_floating_point() else x.float().clamp(0, 1)
        lab = rgb_to_lab(rgb)
        lightness = lab[:, :1] / 100
        grey = (lightness * 255).round().clamp(0, 255).to(x.dtype) if not x.is_floating_point() \
            else lightness.to(x.dtype)
        ab = F.adaptive_avg_pool2d(lab[:, 1:], self.grid)  # (B, 2, grid, grid)
        targets = ab_classes(ab.permute(0, 2, 3, 1), bin_size=self.ab_bin).flatten()
        return grey.expand(-1, 3, -1, -1).contiguous(), targets

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "colorization")
        grey, targets = self.split(views.global_views[0])
        pooled = self.encoder(grey).pooled
        logits = self.head(pooled).view(-1, self.classes)
        loss, accuracy = classification_loss(logits, targets)
        return ObjectiveOutput(loss=loss, embeddings=pooled.detach(),
                               logs={"color_ce": global_log(loss), "color_acc": global_log(accuracy)})


@OBJECTIVES.register("colorization", description="Colorization as ab-bin classification from lightness (Zhang et al., 2016)")
def build_colorization(*, encoder: Encoder, ab_bin: float = 10.0, grid: int = 4) -> Colorization:
    """Paper: 10-wide ab bins (313 in gamut), per-pixel at 1/4 resolution; here a ``grid × grid`` map."""
    if not 1.0 <= ab_bin <= 110.0 or abs(220 / ab_bin - round(220 / ab_bin)) > 1e-6:
        raise ValueError(f"ab_bin must divide 220 (e.g. 10, 20, 22, 44), got {ab_bin}")
    if grid < 1:
        raise ValueError(f"grid must be ≥ 1, got {grid}")
    return Colorization(encoder, ab_bin=ab_bin, grid=grid)
