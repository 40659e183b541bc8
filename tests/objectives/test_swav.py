"""SwAV: Sinkhorn-Knopp marginals, swapped prediction by hand, prototype handling, multi-crop training steps."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omnissl.objectives.swav import build_swav, sinkhorn_knopp, swapped_prediction
from omnissl.core.types import ViewSet


def test_sinkhorn_rows_and_columns_sum_to_the_marginals() -> None:
    torch.manual_seed(0)
    scores = F.normalize(torch.randn(12, 8), dim=1) @ F.normalize(torch.randn(4, 8), dim=1).T  # (B=12, P=4)
    q = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    # The last normalisation is over samples, so rows are exact; columns converge to B/P.
    assert torch.allclose(q.sum(dim=1), torch.ones(12), atol=1e-5)
    plain = F.softmax(scores / 0.05, dim=1)  # per-sample softmax: no equipartition at all
    assert (q.sum(dim=0) - 3.0).abs().max() < (plain.sum(dim=0) - 3.0).abs().max()
    q_long = sinkhorn_knopp(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(q_long.sum(dim=0), torch.full((4,), 3.0), atol=1e-3)


def test_sinkhorn_one_iteration_by_hand() -> None:
    scores = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # B=3, P=2
    eps = 1.0
    q = torch.exp(scores / eps).T
    q = q / q.sum()
    q = q / q.sum(dim=1, keepdim=True) / 2
    q = q / q.sum(dim=0, keepdim=True) / 3
    assert torch.allclose(sinkhorn_knopp(scores, epsilon=eps, iterations=1), (q * 3).T, atol=1e-6)


def test_swapped_prediction_by_hand() -> None:
    codes = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    scores = [torch.tensor([[0.2, 0.1]]), torch.tensor([[0.3, -0.1]]), torch.tensor([[0.0, 0.5]])]
    logp = [F.log_softmax(s / 0.1, dim=1) for s in scores]
    # pairs (code i, view v≠i): (0,1), (0,2), (1,0), (1,2)
    manual = -(logp[1][0, 0] + logp[2][0, 0] + logp[0][0, 1] + logp[2][0, 1]) / 4
    assert torch.isclose(swapped_prediction(codes, scores, temperature=0.1), manual)


def test_prototypes_frozen_then_trained_and_renormalised(tiny_encoder) -> None:
    swav = build_swav(encoder=tiny_encoder(in_features=4), projection_dim=4, hidden_dim=8, num_prototypes=5,
                      freeze_prototypes_steps=1)
    views = ViewSet(global_views=[torch.randn(8, 4), torch.randn(8, 4)])
    swav(views).loss.backward()
    assert swav.prototypes.layer.weight.grad is None
    swav.on_step_end(step=0, total_steps=2)
    swav(views).loss.backward()
    assert swav.prototypes.layer.weight.grad is not None
    with torch.no_grad():
        swav.prototypes.layer.weight.mul_(3.0)
    swav.on_step_end(step=1, total_steps=2)
    assert torch.allclose(swav.prototypes.layer.weight.norm(dim=1), torch.ones(5), atol=1e-5)


def test_queue_fills_newest_first(tiny_encoder) -> None:
    swav = build_swav(encoder=tiny_encoder(in_features=4), projection_dim=4, hidden_dim=8, num_prototypes=5,
                      queue_length=12, freeze_prototypes_steps=0)
    views = ViewSet(global_views=[torch.randn(8, 4), torch.randn(8, 4)])
    swav(views)
    assert int(swav.queue_filled) == 8
    first = swav.queue[0, :8].clone()
    swav(views)
    assert int(swav.queue_filled) == 12
    assert torch.allclose(swav.queue[0, 8:12], first[:4])  # older features moved back, oldest dropped


def test_swav_multicrop_trains_on_real_images(conv_encoder, real_views, train) -> None:
    views = real_views(local=2)
    torch.manual_seed(0)
    swav = build_swav(encoder=conv_encoder(), projection_dim=32, hidden_dim=64, num_prototypes=16,
                      freeze_prototypes_steps=2)
    losses = train(swav, views, steps=12, lr=3e-3)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.05, losses
