"""CPC (core objective): the InfoNCE over future steps against a direct computation of the paper's formula,
padding handling, build-time checks, and real training steps on a UCR series set."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from omnissl.core.errors import IncompatibleError
from omnissl.objectives.cpc import build_cpc, cpc_loss
from omnissl.core.types import Encoder, EncoderOutput, ViewSet


pytestmark = pytest.mark.usefixtures("one_thread")


class FrameEncoder(Encoder):
    """Per-step linear frames ``(B, C, T)`` → ``(B, T, D)``; NaN steps are padding. Enough to exercise CPC."""

    output_kinds = frozenset({"pooled", "tokens"})

    def __init__(self, channels: int = 1, dim: int = 8) -> None:
        super().__init__()
        self.embed_dim = dim
        self.proj = nn.Linear(channels, dim)

    def forward(self, x: Tensor) -> EncoderOutput:
        padding = torch.isnan(x).all(dim=1)
        tokens = self.proj(torch.nan_to_num(x).transpose(1, 2))
        return EncoderOutput(pooled=tokens.mean(dim=1), tokens=tokens, padding_mask=padding if padding.any() else None)


class PooledOnly(Encoder):
    embed_dim = 4

    def forward(self, x: Tensor) -> EncoderOutput:  # pragma: no cover - never called
        return EncoderOutput(pooled=x)


def direct_cpc(z: Tensor, predictions: list[Tensor], lengths: list[int]) -> float:
    """The formula with Python loops: for every anchor (b, t, k) with t+k real, −log softmax over the frames
    z[b', t+k] of the sequences b' that are real at t+k, of the true one (b' = b)."""
    total, count = 0.0, 0
    b_size = z.shape[0]
    for k, pred in enumerate(predictions, start=1):
        for b in range(b_size):
            for t in range(lengths[b] - k):
                keys = [c for c in range(b_size) if t + k < lengths[c]]
                scores = {c: float(pred[b, t] @ z[c, t + k]) for c in keys}
                total -= scores[b] - math.log(sum(math.exp(s) for s in scores.values()))
                count += 1
    return total / count


def test_cpc_loss_matches_the_formula() -> None:
    torch.manual_seed(0)
    z = torch.randn(3, 6, 4)
    predictions = [torch.randn(3, 6, 4) for _ in range(3)]
    loss, accuracy = cpc_loss(z, predictions)
    assert float(loss) == pytest.approx(direct_cpc(z, predictions, [6, 6, 6]), rel=1e-5)
    assert accuracy.shape == (3,) and ((0 <= accuracy) & (accuracy <= 1)).all()


def test_cpc_loss_hand_checked_single_anchor() -> None:
    # B=2, N=2, K=1, D=1: anchors (b=0,t=0) and (b=1,t=0); keys z[:, 1] = (1, −1); predictions (2, 0.5)
    z = torch.tensor([[[0.0], [1.0]], [[0.0], [-1.0]]])
    pred = torch.tensor([[[2.0], [9.0]], [[0.5], [9.0]]])  # the t=1 rows have no future and must be ignored
    first = -(2.0 - math.log(math.exp(2.0) + math.exp(-2.0)))
    second = -(-0.5 - math.log(math.exp(0.5) + math.exp(-0.5)))
    loss, accuracy = cpc_loss(z, [pred])
    assert float(loss) == pytest.approx((first + second) / 2, rel=1e-6)
    assert float(accuracy[0]) == 0.5  # anchor 0 picks its own frame, anchor 1 does not


def test_padded_frames_are_neither_anchors_nor_negatives() -> None:
    torch.manual_seed(1)
    z = torch.randn(3, 7, 4)
    predictions = [torch.randn(3, 7, 4) for _ in range(2)]
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[1, 4:] = True
    padding[2, 6:] = True
    loss, _ = cpc_loss(z, predictions, padding)
    assert float(loss) == pytest.approx(direct_cpc(z, predictions, [7, 4, 6]), rel=1e-5)
    # steps where every sequence is padding: finite loss and gradient
    z = z.clone().requires_grad_(True)
    padding[:, 5:] = True
    loss, _ = cpc_loss(z, predictions, padding)
    loss.backward()
    assert float(loss) == pytest.approx(direct_cpc(z.detach(), predictions, [5, 4, 5]), rel=1e-5)
    assert torch.isfinite(z.grad).all()


def test_cpc_objective_backpropagates_and_rejects_pooled_only_encoders() -> None:
    encoder = FrameEncoder(channels=2)
    objective = build_cpc(encoder=encoder, context_dim=6, prediction_steps=3)
    x = torch.randn(4, 2, 10)
    x[0, :, 7:] = float("nan")
    out = objective(ViewSet(global_views=[x]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and encoder.proj.weight.grad is not None
    assert set(out.logs) == {"cpc_acc_k1", "cpc_acc_k3"}
    with pytest.raises(IncompatibleError, match="token"):
        build_cpc(encoder=PooledOnly())
    with pytest.raises(ValueError, match="no anchor"):
        cpc_loss(torch.randn(2, 1, 3), [torch.randn(2, 1, 3)])


def test_cpc_learns_on_real_series(data_root: Path) -> None:
    """A few optimiser steps on GunPoint (causal CNN frames) lower the CPC loss on a fixed batch."""
    from omnissl.core.registry import DATASETS, ENCODERS

    bundle = DATASETS.get("ucr_uea").builder(dataset="GunPoint", data_root=data_root)
    x = bundle.train.values[:16]
    torch.manual_seed(0)
    encoder = ENCODERS.get("ts2vec_cnn").builder(in_channels=1, hidden_dim=16, output_dim=16, depth=2, causal=True,
                                                 dropout=0.0)
    objective = build_cpc(encoder=encoder, context_dim=16, prediction_steps=4)
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-3)
    views = ViewSet(global_views=[x])
    losses = []
    for _ in range(15):
        loss = objective(views).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1 and losses[0] == pytest.approx(math.log(16), abs=1.0)
