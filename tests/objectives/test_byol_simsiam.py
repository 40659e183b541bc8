"""BYOL and SimSiam: the regression losses by hand, stop-gradient branches, EMA target, real training steps."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omnissl.objectives.byol import build_byol, byol_loss
from omnissl.objectives.simsiam import build_simsiam, negative_cosine
from omnissl.core.types import ViewSet


def test_byol_loss_by_hand() -> None:
    p = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # ‖p̂ − t̂‖² = 2 − 2cos: 0 for the aligned row, 2 for the orthogonal one → mean 1.
    assert torch.isclose(byol_loss(p, t), torch.tensor(1.0))
    assert torch.isclose(byol_loss(p, t), ((F.normalize(p, dim=1) - F.normalize(t, dim=1)) ** 2).sum(1).mean())


def test_byol_target_gets_no_gradient_and_follows_the_schedule(tiny_encoder) -> None:
    byol = build_byol(encoder=tiny_encoder(in_features=4), projection_dim=4, hidden_dim=8, momentum=0.5)
    out = byol(ViewSet(global_views=[torch.randn(6, 4), torch.randn(6, 4)]))
    out.loss.backward()
    assert all(p.grad is None for p in byol.target_encoder.parameters())
    assert all(p.grad is None for p in byol.target_projector.parameters())
    assert all(p.grad is not None for p in byol.predictor.parameters())
    with torch.no_grad():
        for p in byol.encoder.parameters():
            p.add_(2.0)
    before = [p.clone() for p in byol.target_encoder.parameters()]
    byol.on_step_end(step=0, total_steps=4)
    for old, new, online in zip(before, byol.target_encoder.parameters(), byol.encoder.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * online, atol=1e-6)


def test_simsiam_loss_and_stop_gradient() -> None:
    p = torch.tensor([[1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert torch.isclose(loss, torch.tensor(-1 / 2**0.5))
    loss.backward()
    assert z.grad is None and p.grad is not None


def test_simsiam_gradient_only_through_predictor_branch(tiny_encoder) -> None:
    simsiam = build_simsiam(encoder=tiny_encoder(in_features=4), projection_dim=8, predictor_hidden_dim=4)
    x1, x2 = torch.randn(6, 4), torch.randn(6, 4)
    out = simsiam(ViewSet(global_views=[x1, x2]))
    h = simsiam.encoder(torch.cat([x1, x2])).pooled
    z1, z2 = simsiam.projector(h).chunk(2)
    p1, p2 = simsiam.predictor(torch.cat([z1, z2])).chunk(2)
    manual = -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2
    assert torch.allclose(out.loss, manual, atol=1e-6)


def test_byol_and_simsiam_train_on_real_images(conv_encoder, real_views, train) -> None:
    views = real_views()
    torch.manual_seed(0)
    byol = build_byol(encoder=conv_encoder(), projection_dim=32, hidden_dim=64, momentum=0.9)
    losses = train(byol, views, steps=12, lr=3e-3)
    assert sum(losses[-5:]) / 5 < losses[0] * 0.8, losses
    torch.manual_seed(0)
    simsiam = build_simsiam(encoder=conv_encoder(), projection_dim=64, predictor_hidden_dim=16)
    losses = train(simsiam, views, steps=12, lr=3e-3)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.1, losses
