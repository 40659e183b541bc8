"""iBOT: masked-token distillation by hand, the mask draw, the student's masked input, teacher without grads."""

from __future__ import annotations

import torch
from omnissl_image.encoders import build_vit
from torch.nn import functional as F

from omnissl.core.types import ViewSet
from omnissl.objectives.ibot import build_ibot, draw_patch_mask, masked_patch_distillation


def test_masked_patch_distillation_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    c = torch.randn(1, 4, generator=g)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    per_image = []
    for b in range(2):
        terms = [-(F.softmax((t[b, j] - c[0]) / 0.04, dim=0) * F.log_softmax(s[b, j] / 0.1, dim=0)).sum()
                 for j in range(3) if mask[b, j]]
        per_image.append(sum(terms) / len(terms) if terms else torch.tensor(0.0))
    manual = sum(per_image) / 2
    got = masked_patch_distillation(t, s, mask, c, teacher_temp=0.04, student_temp=0.1)
    assert torch.isclose(got, manual, rtol=1e-5)


def test_mask_draw_follows_probability_and_ratio() -> None:
    torch.manual_seed(0)
    assert not draw_patch_mask(8, 16, ratio=(0.1, 0.5), probability=0.0, device=torch.device("cpu")).any()
    mask = draw_patch_mask(400, 64, ratio=(0.5, 0.5), probability=1.0, device=torch.device("cpu"))
    assert abs(mask.float().mean().item() - 0.5) < 0.02


def test_student_sees_mask_tokens_teacher_gets_no_grad() -> None:
    torch.manual_seed(0)
    encoder = build_vit(image_size=8, patch_size=4, dim=16, depth=1, heads=2)
    ibot = build_ibot(encoder=encoder, out_dim=16, hidden_dim=8, bottleneck_dim=8, mask_probability=1.0,
                      mask_ratio=(0.5, 0.5))
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    sequence = encoder.tokenize(x)
    mask = torch.tensor([[True, False, False, True]] * 3)
    masked = ibot.masked_sequence(x, sequence, mask).tokens
    filler = encoder.tokenize(torch.zeros_like(x)).tokens + ibot.mask_token
    assert torch.allclose(masked[mask], filler[mask]) and torch.allclose(masked[~mask], sequence.tokens[~mask])
    out = ibot(ViewSet(global_views=[x, x.flip(-1)]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and ibot.mask_token.grad is not None
    assert all(p.grad is None for p in ibot.teacher_encoder.parameters())
    assert ibot.towers["main"] is ibot.teacher_encoder and not torch.equal(ibot.center_patch, torch.zeros(1, 16))


def test_ibot_trains_on_real_images(real_views, train) -> None:
    torch.manual_seed(0)
    encoder = build_vit(image_size=32, patch_size=8, dim=32, depth=2, heads=2)
    ibot = build_ibot(encoder=encoder, out_dim=64, hidden_dim=64, bottleneck_dim=32, momentum=0.9,
                      mask_probability=1.0)
    losses = train(ibot, real_views(batch=16), steps=10, lr=3e-3)
    assert all(torch.isfinite(torch.tensor(losses))) and sum(losses[-3:]) / 3 < losses[0], losses
