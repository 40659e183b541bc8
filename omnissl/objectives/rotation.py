"""Rotation prediction (Gidaris et al., 2018, "Unsupervised Representation Learning by Predicting Image Rotations").

Each image of the view ``x (B, C, H, W)`` (square crops) is rotated by 0°, 90°, 180° and 270°; as in the paper
(§3, "we feed all four rotated copies in the same mini-batch") the encoder sees all ``4B`` copies and a classifier
on the pooled output ``(4B, D)`` predicts which rotation was applied: 4-way cross-entropy averaged over the ``4B``
copies. No randomness beyond the augmentations. Paper: NIN/AlexNet/ResNet on CIFAR-10 and ImageNet, linear or
MLP classifier on the last block (here the pooled output, so any image encoder works).
"""

from __future__ import annotations

import torch
from torch import Tensor

from omnissl.core.errors import DataError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log
from omnissl.objectives._pretext import check_image, classification_loss, classifier
from omnissl.objectives.base import Objective
from omnissl.objectives.multiview import need_views


def rotated_copies(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(B, C, S, S)`` → the 4 rotations stacked rotation-major ``(4B, C, S, S)`` and their labels ``(4B,)``
    (label k = k·90° counter-clockwise)."""
    if x.shape[-1] != x.shape[-2]:
        raise DataError(f"rotation: needs square images to stack rotations, got {tuple(x.shape)}")
    copies = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return copies, labels


class RotationPrediction(Objective):
    def __init__(self, encoder: Encoder, *, hidden_dim: int) -> None:
        super().__init__(encoder)
        self.head = classifier(in_dim=encoder.embed_dim, hidden_dim=hidden_dim, classes=4)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "rotation")
        x = views.global_views[0]
        check_image(x, "rotation")
        copies, labels = rotated_copies(x)
        pooled = self.encoder(copies).pooled
        loss, accuracy = classification_loss(self.head(pooled), labels)
        return ObjectiveOutput(loss=loss, embeddings=pooled[: x.shape[0]].detach(),
                               logs={"rotation_ce": global_log(loss), "rotation_acc": global_log(accuracy)})


@OBJECTIVES.register("rotation", description="RotNet: predict which of 4 rotations was applied (Gidaris et al., 2018)")
def build_rotation(*, encoder: Encoder, hidden_dim: int = 0) -> RotationPrediction:
    """``hidden_dim`` 0: a linear classifier on the pooled output; > 0: an MLP with that hidden width."""
    return RotationPrediction(encoder, hidden_dim=hidden_dim)
