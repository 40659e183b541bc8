"""DINO: cross-entropy by hand, centre update, teacher-temperature warm-up, teacher sees globals only."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from omnissl.objectives.dino import build_dino, dino_cross_entropy, teacher_temperature
from omnissl.core.types import ViewSet


def test_dino_cross_entropy_by_hand() -> None:
    t = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    s = [torch.tensor([[0.5, 0.1]]), torch.tensor([[0.2, 0.4]]), torch.tensor([[0.3, 0.3]])]
    c = torch.tensor([[0.1, -0.1]])
    pt = [F.softmax((ti - c) / 0.04, dim=1) for ti in t]
    ls = [F.log_softmax(si / 0.1, dim=1) for si in s]
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    manual = -sum((pt[i] * ls[v]).sum() for i, v in pairs) / 4
    assert torch.isclose(dino_cross_entropy(t, s, c, teacher_temp=0.04, student_temp=0.1), manual)


def test_centre_update_and_temperature_warmup(tiny_encoder) -> None:
    dino = build_dino(encoder=tiny_encoder(in_features=4), out_dim=3, hidden_dim=8, bottleneck_dim=4,
                      center_momentum=0.9)
    outputs = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    dino.update_center(outputs)
    assert torch.allclose(dino.center, 0.1 * torch.tensor([[2.0, 2.0, 2.0]]))
    dino.update_center(outputs)
    assert torch.allclose(dino.center, 0.9 * 0.2 + 0.1 * torch.tensor([[2.0, 2.0, 2.0]]))
    assert teacher_temperature(0, warmup=0.04, final=0.07, warmup_steps=30) == 0.04
    assert abs(teacher_temperature(15, warmup=0.04, final=0.07, warmup_steps=30) - 0.055) < 1e-12
    assert teacher_temperature(30, warmup=0.04, final=0.07, warmup_steps=30) == 0.07


def test_teacher_sees_global_views_only_and_gets_no_grad(tiny_encoder) -> None:
    dino = build_dino(encoder=tiny_encoder(in_features=4), out_dim=6, hidden_dim=8, bottleneck_dim=4)
    batches: list[int] = []
    dino.teacher_encoder.register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    views = ViewSet(global_views=[torch.randn(5, 4), torch.randn(5, 4)], local_views=[torch.randn(5, 4)] * 3)
    out = dino(views)
    out.loss.backward()
    assert sum(batches) == 10  # two global views of 5, no locals
    assert all(p.grad is None for p in dino.teacher_encoder.parameters())
    assert all(p.grad is None for p in dino.teacher_head.parameters())
    assert dino.head.last_layer.weight.grad is not None
    assert torch.isfinite(out.loss) and dino.towers["main"] is dino.teacher_encoder


def test_dino_multicrop_trains_on_real_images(conv_encoder, real_views, train) -> None:
    views = real_views(local=2)
    torch.manual_seed(0)
    dino = build_dino(encoder=conv_encoder(), out_dim=64, hidden_dim=64, bottleneck_dim=32, momentum=0.9,
                      teacher_temp=0.04)
    losses = train(dino, views, steps=12, lr=3e-3)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < losses[0], losses
