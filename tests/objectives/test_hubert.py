"""HuBERT: k-means units, masked cross-entropy by hand, the refined second iteration from a frozen snapshot."""

from __future__ import annotations

import math

import torch
from omnissl_speech.hubert import assign_clusters, build_hubert, kmeans
from torch.nn import functional as F

from omnissl.core.types import ViewSet
from omnissl.objectives.masking import MaskPlan


def test_kmeans_finds_separated_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    found = kmeans(points, clusters=3, iterations=10)
    assert torch.allclose(found.sort(dim=0).values, centres.sort(dim=0).values, atol=0.1)
    labels = assign_clusters(points, found)
    assert all(len(set(labels[i * 20:(i + 1) * 20].tolist())) == 1 for i in range(3))


def toy_inputs(batch: int = 4, length: int = 10):
    g = torch.Generator().manual_seed(1)
    return {"values": torch.randn(batch, length, 6, generator=g)}


def test_masked_cross_entropy_by_hand(toy_token_encoder, monkeypatch) -> None:
    torch.manual_seed(0)
    hubert = build_hubert(encoder=toy_token_encoder(), num_clusters=4, kmeans_iters=5, projection_dim=8,
                          decoder_dim=16, decoder_heads=2)
    x = toy_inputs()
    hubert(ViewSet(global_views=[x]))  # the first batch fits the k-means codebook
    assert bool(hubert.fitted) and int(hubert.iteration) == 0
    targets = assign_clusters(x["values"].reshape(-1, 6), hubert.feature_centroids).view(4, 10)
    # recompute with the same masks: replay the draw
    torch.manual_seed(5)
    out = hubert(ViewSet(global_views=[x]))
    torch.manual_seed(5)
    from omnissl.objectives.mae import encode_visible
    encoded, plan = encode_visible(hubert.encoder, hubert.encoder.tokenize(x), ratio=hubert.mask_ratio)
    projected = hubert.decoder(encoded.tokens, plan, length=10, padding_mask=None)
    logits = F.normalize(projected, dim=-1) @ F.normalize(hubert.codewords, dim=-1).T / 0.1
    manual = F.cross_entropy(logits[plan.masked], targets[plan.masked])
    assert isinstance(plan, MaskPlan) and torch.isclose(out.loss, manual, rtol=1e-5)


def test_second_iteration_reclusters_snapshot_features(toy_token_encoder, train) -> None:
    torch.manual_seed(0)
    hubert = build_hubert(encoder=toy_token_encoder(), num_clusters=4, kmeans_iters=5, refine_at_step=3,
                          target_layer=1, projection_dim=8, decoder_dim=16, decoder_heads=2)
    views = ViewSet(global_views=[toy_inputs()])
    losses = train(hubert, views, steps=3, lr=1e-2)
    assert int(hubert.iteration) == 1 and not bool(hubert.fitted)
    for s, e in zip(hubert.snapshot.parameters(), hubert.encoder.parameters()):
        assert torch.equal(s, e) and not s.requires_grad
    first_codebook = hubert.feature_centroids.clone()
    out = hubert(views)
    assert bool(hubert.fitted) and out.logs["iteration"] == 1.0 and torch.isfinite(out.loss)
    assert hubert.hidden_centroids.abs().sum() > 0 and torch.equal(hubert.feature_centroids, first_codebook)
    restored = build_hubert(encoder=toy_token_encoder(), num_clusters=4, kmeans_iters=5, refine_at_step=3,
                            target_layer=1, projection_dim=8, decoder_dim=16, decoder_heads=2)
    restored.load_state_dict(hubert.state_dict())  # a resumed run keeps the fitted codebook: no refit
    assert bool(restored.fitted) and torch.equal(restored.hidden_centroids, hubert.hidden_centroids)
    assert all(math.isfinite(v) for v in losses)
