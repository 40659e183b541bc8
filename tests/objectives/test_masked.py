"""MAE and data2vec over any TokenEncoder: masking counts (with padding), loss on masked positions only, the
encoder sees exactly (1 − ratio)·N tokens, data2vec's layer-averaged targets, and real training steps."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import omnissl.objectives.mae as mae_module
from omnissl.objectives.data2vec import build_data2vec, layer_average_target
from omnissl.objectives.mae import build_mae, masked_mse
from omnissl.objectives.masking import random_masking
from omnissl.core.types import ViewSet


def test_random_masking_counts_without_padding() -> None:
    plan = random_masking(3, 16, ratio=0.75, padding_mask=None, device=torch.device("cpu"))
    assert plan.ids_keep.shape == (3, 4) and plan.keep_padding is None
    assert plan.masked.sum(dim=1).tolist() == [12, 12, 12]
    for row in range(3):  # kept ids are exactly the unmasked positions
        assert set(plan.ids_keep[row].tolist()) == set((~plan.masked[row]).nonzero().flatten().tolist())


def test_random_masking_respects_padding() -> None:
    padding = torch.zeros(3, 10, dtype=torch.bool)
    padding[1, 6:] = True   # 6 real tokens
    padding[2, 2:] = True   # 2 real tokens
    plan = random_masking(3, 10, ratio=0.5, padding_mask=padding, device=torch.device("cpu"))
    keep = (~plan.keep_padding).sum(dim=1) if plan.keep_padding is not None else None
    assert keep is not None and keep.tolist() == [5, 3, 1]
    assert plan.masked.sum(dim=1).tolist() == [5, 3, 1]
    assert not (plan.masked & padding).any()
    for row in range(3):
        kept = plan.ids_keep[row][~plan.keep_padding[row]]
        assert not padding[row, kept].any()  # padding is never "visible"


def test_masked_mse_counts_masked_positions_only() -> None:
    target = torch.arange(12.0).view(1, 3, 4)
    prediction = target.clone()
    prediction[0, 0] += 10.0  # wrong, but on a visible position
    prediction[0, 2] += 2.0   # wrong by 2 on every value of a masked position
    masked = torch.tensor([[False, True, True]])
    assert torch.isclose(masked_mse(prediction, target, masked, norm_target=False), torch.tensor(4.0 / 2))
    # norm_target: per-token (t − mean)/sqrt(var + 1e-6) with unbiased var over the 4 values.
    t = target[0, 1]
    normed = (t - t.mean()) / (t.var() + 1e-6).sqrt()
    assert torch.isclose(masked_mse(prediction, target, masked, norm_target=True),
                         (((target[0, 1] - normed) ** 2).mean() + ((target[0, 2] + 2 - normed) ** 2).mean()) / 2)


def test_mae_encoder_sees_visible_tokens_only(toy_token_encoder) -> None:
    encoder = toy_token_encoder(features=6, max_len=16)
    mae = build_mae(encoder=encoder, mask_ratio=0.75, decoder_dim=8, decoder_depth=1, decoder_heads=2)
    mae(ViewSet(global_views=[{"values": torch.randn(4, 16, 6)}]))
    assert encoder.seen == [(4, 4, 16)]  # (1 − 0.75)·16 = 4 tokens per sample


def test_mae_on_the_image_vit_sees_a_quarter_of_the_patches() -> None:
    omnissl_image = pytest.importorskip("omnissl_image.encoders")  # the reference image plugin is installed
    vit = omnissl_image.build_vit(dim=32, depth=1, heads=2)
    seen = []
    vit.trunk.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    mae = build_mae(encoder=vit, decoder_dim=16, decoder_depth=1, decoder_heads=2)
    out = mae(ViewSet(global_views=[torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)]))
    assert seen == [torch.Size([2, 1 + 16, 32])]  # CLS + 16 of the 64 patches
    assert out.logs["visible_tokens"] == 16.0


def test_mae_loss_ignores_visible_positions_and_handles_padding(toy_token_encoder, monkeypatch) -> None:
    plans = []
    original = mae_module.random_masking
    monkeypatch.setattr(mae_module, "random_masking", lambda *a, **k: plans.append(original(*a, **k)) or plans[-1])
    torch.manual_seed(0)
    encoder = toy_token_encoder(features=3, max_len=8)
    mae = build_mae(encoder=encoder, mask_ratio=0.5, decoder_dim=8, decoder_depth=1, decoder_heads=2,
                    norm_target=False)
    padding = torch.zeros(2, 8, dtype=torch.bool)
    padding[1, 5:] = True
    x = {"values": torch.randn(2, 8, 3), "padding_mask": padding}
    torch.manual_seed(1)
    first = mae(ViewSet(global_views=[x]))
    assert encoder.seen[-1] == (2, 4, 16)  # 4 and 2 visible tokens, right-padded to 4
    altered = {"values": x["values"].clone(), "padding_mask": padding}
    hidden = ~plans[-1].masked  # visible or padding: must not matter to the loss
    monkeypatch.setattr(encoder, "reconstruction_target",
                        lambda inp: torch.where(hidden.unsqueeze(-1), torch.full_like(inp["values"], 1e3),
                                                inp["values"]))
    torch.manual_seed(1)
    second = mae(ViewSet(global_views=[altered]))
    assert torch.equal(plans[-1].masked, plans[-2].masked)
    assert torch.isclose(first.loss, second.loss)
    first.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in mae.parameters() if p.grad is not None)


def test_data2vec_targets_and_gradient_flow(toy_token_encoder) -> None:
    hidden = [torch.randn(2, 3, 4) * (i + 1) + i for i in range(3)]
    manual = (F.layer_norm(hidden[1], (4,)) + F.layer_norm(hidden[2], (4,))) / 2
    assert torch.allclose(layer_average_target(hidden, top_k=2), manual, atol=1e-6)
    encoder = toy_token_encoder(features=5, max_len=12, depth=3)
    d2v = build_data2vec(encoder=encoder, mask_ratio=0.5, top_k=2, decoder_dim=8, decoder_depth=1, decoder_heads=2)
    out = d2v(ViewSet(global_views=[{"values": torch.randn(3, 12, 5)}]))
    out.loss.backward()
    assert encoder.seen == [(3, 6, 16)] and d2v.teacher.seen == [(3, 12, 16)]  # student: visible; teacher: all
    assert all(p.grad is None for p in d2v.teacher.parameters())
    assert all(p.grad is not None for p in d2v.encoder.embed.parameters())


def test_mae_and_data2vec_train_on_real_images(real_views, train) -> None:
    encoders = pytest.importorskip("omnissl_image.encoders")
    views = real_views(count=1, batch=16)
    torch.manual_seed(0)
    mae = build_mae(encoder=encoders.build_vit(dim=32, depth=1, heads=2, pool="mean"), decoder_dim=32,
                    decoder_depth=1, decoder_heads=2)
    losses = train(mae, views, steps=12, lr=2e-3)
    assert sum(losses[-5:]) / 5 < losses[0] * 0.9, losses
    torch.manual_seed(0)
    d2v = build_data2vec(encoder=encoders.build_vit(dim=32, depth=2, heads=2, pool="mean"), top_k=1, decoder_dim=32,
                         decoder_depth=1, decoder_heads=2, momentum=0.9)
    losses = train(d2v, views, steps=12, lr=2e-3)
    assert all(torch.isfinite(torch.tensor(losses))) and sum(losses[-5:]) / 5 < losses[0], losses
