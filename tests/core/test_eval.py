from __future__ import annotations

import math

import torch

from omnissl.eval.knn import knn_accuracy, knn_predict
from omnissl.eval.linear_probe import linear_probe


def test_knn_weighted_vote_matches_hand_computation() -> None:
    # Two classes on the unit circle; the query sits between a class-0 point and two weaker class-1 points.
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.9]])
    sims = torch.nn.functional.normalize(bank, dim=1) @ torch.nn.functional.normalize(query, dim=1).T
    for temperature in (0.07, 1.0):
        w = (sims.flatten() / temperature).exp()
        expected = 0 if w[0] > w[1] + w[2] else 1
        assert knn_predict(bank, labels, query, k=3, temperature=temperature).item() == expected
    # With k=1 only the nearest point votes.
    nearest = int(sims.flatten().argmax())
    assert knn_predict(bank, labels, query, k=1, temperature=0.1).item() == labels[nearest]


def test_knn_is_perfect_on_separated_clusters_and_chance_on_noise() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 5
    labels = torch.arange(400) % 4
    features = centres[labels] + 0.1 * torch.randn(400, 16, generator=generator)
    assert knn_accuracy(features[:300], labels[:300], features[300:], labels[300:], k=20, temperature=0.07) == 1.0
    noise = torch.randn(400, 16, generator=generator)
    chance = knn_accuracy(noise[:300], labels[:300], noise[300:], labels[300:], k=20, temperature=0.07)
    assert chance < 0.5


def test_linear_probe_learns_a_linear_rule_and_reports_spread() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1200, 8, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    result = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], seeds=3, max_iter=100)
    assert result.mean > 0.95
    assert len(result.per_seed) == 3 and math.isfinite(result.std)
    shuffled = linear_probe(x[:1000], y[torch.randperm(1000, generator=generator)], x[1000:], y[1000:], seeds=2,
                            max_iter=50)
    assert shuffled.mean < 0.7  # labels unrelated to features: no better than chance-ish


def test_probe_never_looks_at_test_labels_for_selection() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(600, 4, generator=generator)
    y = (x[:, 0] > 0).long()
    test_x = torch.randn(200, 4, generator=generator)
    a = linear_probe(x, y, test_x, (test_x[:, 0] > 0).long(), seeds=2, max_iter=50)
    b = linear_probe(x, y, test_x, 1 - (test_x[:, 0] > 0).long(), seeds=2, max_iter=50)
    # Inverting the test labels must not change which decay was chosen: selection used validation only.
    assert a.chosen_weight_decay == b.chosen_weight_decay
    assert abs(a.mean + b.mean - 1.0) < 1e-6
