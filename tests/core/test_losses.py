from __future__ import annotations

import math

import torch

from omnissl.objectives.contrastive import info_nce, nt_xent


def _nt_xent_by_formula(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    n, batch = z.shape[0], z1.shape[0]
    total = 0.0
    for i in range(n):
        j = (i + batch) % n
        numerator = math.exp(float(z[i] @ z[j]) / tau)
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        total += -math.log(numerator / denominator)
    return total / n


def test_nt_xent_equals_the_formula() -> None:
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 3, generator=generator), torch.randn(5, 3, generator=generator)
    for tau in (0.1, 0.5, 1.0):
        assert math.isclose(nt_xent(z1, z2, temperature=tau).item(), _nt_xent_by_formula(z1, z2, tau), rel_tol=1e-5)


def test_nt_xent_is_low_for_matching_views_and_high_for_random() -> None:
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(32, 16, generator=generator)
    matched = nt_xent(z, z + 0.01 * torch.randn(32, 16, generator=generator), temperature=0.1)
    random = nt_xent(z, torch.randn(32, 16, generator=generator), temperature=0.1)
    assert matched < 0.1 < random


def test_info_nce_with_extra_negatives_by_formula() -> None:
    generator = torch.Generator().manual_seed(2)
    q, k, neg = (torch.randn(4, 3, generator=generator) for _ in range(3))
    qn, kn, nn_ = (t / t.norm(dim=1, keepdim=True) for t in (q, k, neg))
    tau = 0.2
    expected = 0.0
    for i in range(4):
        logits = torch.cat([qn[i] @ kn.T, qn[i] @ nn_.T]) / tau
        expected += -(logits[i] - torch.logsumexp(logits, 0)).item()
    assert math.isclose(info_nce(q, k, neg, temperature=tau).item(), expected / 4, rel_tol=1e-5)
