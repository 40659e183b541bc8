"""Barlow Twins and VICReg on hand-built embeddings with known correlations, then a few real training steps."""

from __future__ import annotations

import torch

from omnissl.objectives.barlow_twins import barlow_twins_loss, build_barlow_twins, cross_correlation
from omnissl.objectives.vicreg import build_vicreg, covariance_term, invariance_term, variance_term, vicreg_loss


def _orthogonal_columns() -> torch.Tensor:
    # Columns are ±1 patterns with zero mean, unit (biased) variance and zero correlation with each other.
    return torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])


def test_barlow_twins_known_correlations() -> None:
    z = _orthogonal_columns()
    assert torch.allclose(cross_correlation(z, z), torch.eye(2), atol=1e-4)
    loss, on, off = barlow_twins_loss(z, z, lambda_offdiag=0.5)
    assert float(loss) < 1e-4
    # Anti-correlated twin: C = −I → on-diagonal Σ(1 − (−1))² = 4·D = 8.
    loss, on, off = barlow_twins_loss(z, -z, lambda_offdiag=0.5)
    assert torch.isclose(on, torch.tensor(8.0), atol=1e-3) and float(off) < 1e-4
    # Swapped columns: C = [[0, 1], [1, 0]] → on = 2, off = 2 → loss = 2 + λ·2.
    loss, on, off = barlow_twins_loss(z, z.flip(1), lambda_offdiag=0.5)
    assert torch.isclose(loss, torch.tensor(3.0), atol=1e-3)


def test_barlow_twins_scale_invariant_per_dimension() -> None:
    z = torch.randn(32, 4)
    a = barlow_twins_loss(z, z * torch.tensor([2.0, 3.0, 0.5, 7.0]) + 5.0, lambda_offdiag=0.01)[0]
    b = barlow_twins_loss(z, z, lambda_offdiag=0.01)[0]
    assert torch.allclose(a, b, atol=1e-4)


def test_vicreg_terms_separately() -> None:
    z = _orthogonal_columns() * 2.0  # unbiased var = 16/3 → std ≈ 2.31 > γ=1: no variance penalty
    assert float(variance_term(z)) == 0.0
    small = _orthogonal_columns() * 0.25  # std = 0.25·sqrt(4/3) each
    expected = 1 - (0.25**2 * 4 / 3 + 1e-4) ** 0.5
    assert torch.isclose(variance_term(small), torch.tensor(expected), atol=1e-6)
    assert float(covariance_term(z)) < 1e-8  # orthogonal columns
    correlated = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0], [-2.0, -2.0]])
    # Cov = [[10/3, 10/3], [10/3, 10/3]] → off-diagonal squares 2·(10/3)², divided by d = 2.
    assert torch.isclose(covariance_term(correlated), torch.tensor((10 / 3) ** 2), atol=1e-5)
    assert torch.isclose(invariance_term(z, z + 1.0), torch.tensor(1.0))
    loss, terms = vicreg_loss(small, small + 1.0, sim_coeff=25, std_coeff=25, cov_coeff=1)
    assert torch.isclose(loss, 25 * 1.0 + 25 * 2 * torch.tensor(expected) + terms["covariance"], atol=1e-5)


def test_barlow_twins_and_vicreg_train_on_real_images(conv_encoder, real_views, train) -> None:
    views = real_views()
    for build, kwargs in ((build_barlow_twins, dict(projection_dim=64, hidden_dim=64)),
                          (build_vicreg, dict(expander_dim=64))):
        torch.manual_seed(0)
        objective = build(encoder=conv_encoder(), **kwargs)
        losses = train(objective, views, steps=10, lr=3e-3)
        assert sum(losses[-3:]) / 3 < losses[0] * 0.8, (build.__name__, losses)
