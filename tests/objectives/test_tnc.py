"""TNC: window draws respect the neighbourhood, the debiased PU loss by hand, and training."""

from __future__ import annotations

import math

import pytest
import torch
from omnissl_timeseries.encoders import build_ts2vec_cnn
from omnissl_timeseries.tnc import build_tnc, cut_windows, draw_starts, observed_lengths, tnc_loss

from omnissl.core.errors import DataError
from omnissl.core.types import ViewSet


def test_draws_stay_inside_and_respect_the_neighbourhood() -> None:
    torch.manual_seed(0)
    x = torch.randn(500, 2, 60)
    x[:250, :, 50:] = float("nan")  # half the series end at step 50
    lengths = observed_lengths(x)
    assert lengths[:250].eq(50).all() and lengths[250:].eq(60).all()
    anchor, neighbour, distant = draw_starts(lengths, window=10, neighbourhood=5)
    last = lengths - 10
    for start in (anchor, neighbour, distant):
        assert bool((start >= 0).all() and (start <= last).all())
    assert bool(((neighbour - anchor).abs() <= 5).all()) and bool(((distant - anchor).abs() > 5).all())
    assert int(distant.min()) == 0 and int(distant[250:].max()) == 50  # both tails are reachable
    with pytest.raises(DataError, match="needs ≥ 21"):
        draw_starts(torch.tensor([20]), window=10, neighbourhood=5)


def test_cut_windows_and_pu_loss_by_hand() -> None:
    x = torch.arange(12.0).view(1, 1, 12).repeat(2, 1, 1)
    assert cut_windows(x, torch.tensor([0, 7]), 3).tolist() == [[[0.0, 1.0, 2.0]], [[7.0, 8.0, 9.0]]]
    d_n, d_u, w = torch.tensor([2.0]), torch.tensor([-1.0]), 0.2
    def log_sigmoid(v: float) -> float:
        return -math.log1p(math.exp(-v))
    manual = (-log_sigmoid(2.0) - w * log_sigmoid(-1.0) - (1 - w) * log_sigmoid(1.0)) / 2
    assert math.isclose(float(tnc_loss(d_n, d_u, weight=w)), manual, rel_tol=1e-6)


def test_tnc_trains_on_a_batch(train) -> None:
    torch.manual_seed(0)
    t = torch.linspace(0, 30, 120)
    # each series switches frequency half way: neighbours share a regime, distant windows often do not
    x = torch.stack([torch.cat([torch.sin(t[:60] * (1 + i % 2)), torch.sin(t[60:] * 4)]) for i in range(16)])
    encoder = build_ts2vec_cnn(in_channels=1, hidden_dim=8, output_dim=16, depth=2, dropout=0.0)
    tnc = build_tnc(encoder=encoder, window=16, neighbourhood=8, weight=0.05)
    losses = train(tnc, ViewSet(global_views=[x.unsqueeze(1)]), steps=25, lr=3e-3)
    assert all(math.isfinite(v) for v in losses) and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses
