"""KoLeo regulariser (Sablayrolles et al., 2019, "Spreading vectors for similarity search"), as used by DINOv2
(Oquab et al., 2024, §4): the Kozachenko–Leonenko differential-entropy estimator, which pushes features apart.

For ℓ2-normalised features ``z (n, D)``: ``L = −(1/n) Σ_i log(‖z_i − z_{nn(i)}‖ + ε)`` with ``nn(i)`` the nearest
other row (largest inner product), ε = 1e-8. DINOv2 applies it to the student backbone's CLS output of each global
crop and sums over the crops; so does this objective (pooled outputs ``(B, D)`` of every global view).

Global batch: the neighbours are searched over **every rank's rows** (a differentiable ``gather_cat``, the loss
computed in full on each rank), so the loss and gradients do not depend on the number of ranks. DINOv2's code
searches within each GPU's batch only; with one process the two coincide.

On its own KoLeo has no invariance term (it only spreads the batch out); it is meant as a ``compose`` term
(``recipes/image/dinov2.yaml``); ``recipes/image/koleo.yaml`` trains it alone as an ablation.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log
from omnissl.objectives.base import Objective
from omnissl.objectives.multiview import need_views, run_views


def koleo_loss(z: Tensor, *, eps: float = 1e-8) -> Tensor:
    """``z (B, D)`` on this rank → the KoLeo loss over the global batch's rows (a scalar, equal on every rank)."""
    rows = F.normalize(gather_cat(z).float(), dim=-1, eps=eps)
    if rows.shape[0] < 2:
        raise ValueError(f"KoLeo needs at least 2 rows in the global batch, got {rows.shape[0]}")
    with torch.no_grad():
        similarity = rows @ rows.T
        similarity.fill_diagonal_(-2.0)  # below any cosine: a row is never its own neighbour
        neighbour = similarity.argmax(dim=1)
    distance = F.pairwise_distance(rows, rows[neighbour], p=2, eps=eps)
    return -torch.log(distance + eps).mean()


class KoLeo(Objective):
    def forward(self, views: ViewSet) -> ObjectiveOutput:
        need_views(len(views.global_views), 1, "KoLeo")
        pooled = run_views(lambda x: self.encoder(x).pooled, views.global_views)
        loss = sum(koleo_loss(z) for z in pooled)
        assert isinstance(loss, Tensor)
        return ObjectiveOutput(loss=loss, embeddings=pooled[0].detach(), logs={"koleo": global_log(loss)})


@OBJECTIVES.register("koleo", description="KoLeo: nearest-neighbour entropy regulariser of DINOv2 (Sablayrolles et al., 2019)")
def build_koleo(*, encoder: Encoder) -> KoLeo:
    """No parameters: weight it inside ``compose`` (DINOv2: 0.1)."""
    return KoLeo(encoder)
