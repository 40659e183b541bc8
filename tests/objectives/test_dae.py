"""Denoising autoencoders (tabular, time series): corruption, clean-target losses by hand, and training."""

from __future__ import annotations

import math

import torch
from omnissl_tabular.dae import build_tabular_dae, cell_losses
from omnissl_tabular.data import TabularMarginals
from omnissl_tabular.encoders import build_tabular_mlp
from omnissl_timeseries.dae import build_ts_dae, corrupt_series, observed_mse
from omnissl_timeseries.encoders import build_ts2vec_cnn

from omnissl.core.types import ViewSet


def table(rows: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"numeric": torch.randn(rows, 2, generator=g), "categorical": torch.randint(0, 3, (rows, 2), generator=g)}


def tabular(noise: str = "swap", rate: float = 0.15):
    x = table()
    marginals = TabularMarginals(x["numeric"] + 100, (x["categorical"] + 1) % 3)  # every draw differs from x
    encoder = build_tabular_mlp(num_numeric=2, categorical_cardinalities=(3, 3), width=16, depth=1)
    return x, build_tabular_dae(encoder=encoder, noise=noise, noise_rate=rate, num_numeric=2,
                                categorical_cardinalities=(3, 3), marginals=marginals)


def test_cell_losses_by_hand() -> None:
    clean = {"numeric": torch.tensor([[1.0, 2.0]]), "categorical": torch.tensor([[2]])}
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    losses = cell_losses(torch.tensor([[1.5, 0.0]]), [logits], clean)
    ce = -(2.0 - math.log(math.exp(0.5) + math.exp(-1.0) + math.exp(2.0)))
    assert torch.allclose(losses, torch.tensor([[0.25, 4.0, ce]]))


def test_swap_noise_replaces_the_chosen_share_of_cells() -> None:
    x, dae = tabular(rate=0.5)
    torch.manual_seed(0)
    noisy = dae.corrupt(x)
    changed = torch.cat([noisy["numeric"] != x["numeric"], noisy["categorical"] != x["categorical"]], 1)
    assert 0.3 < changed.float().mean() < 0.7
    assert bool((noisy["numeric"][noisy["numeric"] != x["numeric"]] > 90).all())  # from the marginals
    x, gaussian = tabular(noise="gaussian", rate=0.0)
    noisy = gaussian.corrupt(x)
    assert torch.equal(noisy["categorical"], x["categorical"])
    assert 0.05 < (noisy["numeric"] - x["numeric"]).std() < 0.2  # noise_std 0.1


def test_tabular_dae_loss_reconstructs_the_clean_row_and_trains(train) -> None:
    x, dae = tabular()
    dae.eval()
    torch.manual_seed(3)
    out = dae(ViewSet(global_views=[x]))
    torch.manual_seed(3)
    h = dae.encoder(dae.corrupt(x)).pooled
    manual = cell_losses(dae.numeric_head(h), [head(h) for head in dae.categorical_heads], x).mean()
    assert torch.isclose(out.loss, manual, rtol=1e-5)
    dae.train()
    losses = train(dae, ViewSet(global_views=[x]), steps=15, lr=3e-3)
    assert sum(losses[-3:]) / 3 < losses[0], losses


def test_series_corruption_and_observed_mse_by_hand() -> None:
    x = torch.tensor([[[1.0, 2.0, 3.0, float("nan")]]])
    assert torch.equal(corrupt_series(x, noise_std=0.0, mask_rate=0.0).nan_to_num(-9), x.nan_to_num(-9))
    masked = corrupt_series(x, noise_std=0.0, mask_rate=0.999999)
    assert masked[0, 0, :3].tolist() == [0.0, 0.0, 0.0] and math.isnan(masked[0, 0, 3])
    prediction = torch.tensor([[[1.0, 0.0, 3.0, 50.0]]])
    assert torch.isclose(observed_mse(prediction, x), torch.tensor(4.0 / 3))


def test_series_dae_trains_on_a_batch(train) -> None:
    torch.manual_seed(0)
    t = torch.linspace(0, 6.28, 40)
    x = torch.stack([torch.sin(t * (1 + i % 3)) for i in range(12)]).unsqueeze(1)
    encoder = build_ts2vec_cnn(in_channels=1, hidden_dim=8, output_dim=16, depth=2, dropout=0.0)
    dae = build_ts_dae(encoder=encoder, in_channels=1, seq_len=40, hidden_dim=32)
    losses = train(dae, ViewSet(global_views=[x]), steps=20, lr=3e-3)
    assert all(math.isfinite(v) for v in losses) and sum(losses[-3:]) / 3 < losses[0], losses
