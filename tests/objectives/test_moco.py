"""MoCo v2 and v3: hand-checked InfoNCE, FIFO queue order, momentum update, gradient flow, real training steps."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from omnissl.objectives.moco_v2 import build_moco_v2, moco_logits
from omnissl.objectives.moco_v3 import build_moco_v3, moco_v3_contrastive
from omnissl.core.types import ViewSet


def test_moco_logits_and_loss_by_hand() -> None:
    q = torch.tensor([[2.0, 0.0]])  # normalised to [1, 0]
    k = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-3.0, 0.0]])
    logits = moco_logits(q, k, queue, temperature=0.5)
    assert torch.allclose(logits, torch.tensor([[2.0, 0.0, -2.0]]))
    loss = F.cross_entropy(logits, torch.zeros(1, dtype=torch.long))
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    assert math.isclose(float(loss), expected, rel_tol=1e-6)


def test_queue_is_fifo_and_wraps(tiny_encoder) -> None:
    moco = build_moco_v2(encoder=tiny_encoder(in_features=4), queue_size=5, projection_dim=2, hidden_dim=8)
    moco.enqueue(torch.tensor([[1.0, 0], [2, 0], [3, 0]]))
    assert moco.queue[:3, 0].tolist() == [1, 2, 3] and int(moco.queue_ptr) == 3
    moco.enqueue(torch.tensor([[4.0, 0], [5, 0], [6, 0]]))
    # 4, 5 fill slots 3, 4; 6 overwrites the oldest (slot 0, which held 1).
    assert moco.queue[:, 0].tolist() == [6, 2, 3, 4, 5] and int(moco.queue_ptr) == 1
    assert "queue" in moco.state_dict() and "queue_ptr" in moco.state_dict()


def test_forward_enqueues_normalised_keys_and_key_encoder_gets_no_grad(tiny_encoder) -> None:
    torch.manual_seed(0)
    moco = build_moco_v2(encoder=tiny_encoder(in_features=4), queue_size=16, projection_dim=4, hidden_dim=8)
    x1, x2 = torch.randn(6, 4), torch.randn(6, 4)
    out = moco(ViewSet(global_views=[x1, x2]))
    out.loss.backward()
    assert int(moco.queue_ptr) == 6
    moco.eval()
    with torch.no_grad():
        keys = F.normalize(moco.key_projector(moco.key_encoder(x2).pooled), dim=1)
    moco.train()
    assert torch.allclose(moco.queue[:6].norm(dim=1), torch.ones(6), atol=1e-5)
    assert all(p.grad is None for p in moco.key_encoder.parameters())
    assert all(p.grad is not None for p in moco.encoder.parameters())
    assert keys.shape == (6, 4)


def test_momentum_update_after_step(tiny_encoder) -> None:
    moco = build_moco_v2(encoder=tiny_encoder(in_features=4), queue_size=8, projection_dim=4, hidden_dim=8,
                         momentum=0.9)
    with torch.no_grad():
        for p in moco.encoder.parameters():
            p.add_(1.0)  # pretend an optimizer step moved the query encoder
    before = [p.clone() for p in moco.key_encoder.parameters()]
    moco.on_step_end(step=0, total_steps=10)  # cosine schedule: m = 0.9 at step 0
    for old, new, q in zip(before, moco.key_encoder.parameters(), moco.encoder.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * q, atol=1e-6)


def test_moco_v3_loss_is_symmetric_2tau_cross_entropy(tiny_encoder) -> None:
    q, k = torch.randn(5, 3), torch.randn(5, 3)
    logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / 0.2
    manual = -torch.log_softmax(logits, dim=1).diagonal().mean() * 0.4
    assert torch.allclose(moco_v3_contrastive(q, k, temperature=0.2), manual, atol=1e-6)
    moco = build_moco_v3(encoder=tiny_encoder(in_features=4), projection_dim=4, hidden_dim=8,
                         predictor_hidden_dim=8)
    out = moco(ViewSet(global_views=[torch.randn(6, 4), torch.randn(6, 4)]))
    out.loss.backward()
    assert all(p.grad is None for p in moco.momentum_encoder.parameters())
    assert all(p.grad is not None for p in moco.predictor.parameters())


def test_moco_trains_on_real_images(conv_encoder, real_views, train) -> None:
    views = real_views()
    torch.manual_seed(0)
    v2 = build_moco_v2(encoder=conv_encoder(), queue_size=64, projection_dim=32, hidden_dim=64, momentum=0.9)
    losses = train(v2, views, steps=12, lr=3e-3)
    # Steps 0-1 contrast against the random initial queue (easy); from step 2 it holds only real keys.
    assert sum(losses[-5:]) / 5 < losses[2] - 0.4, losses
    torch.manual_seed(0)
    v3 = build_moco_v3(encoder=conv_encoder(), projection_dim=32, hidden_dim=64, predictor_hidden_dim=64,
                       momentum=0.9)
    losses = train(v3, views, steps=12, lr=3e-3)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.1, losses
