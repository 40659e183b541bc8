"""Classic image pretext tasks: rotation, relative patch location, jigsaw, colorization — targets and losses checked
by hand on tiny inputs, and each trains on real CIFAR-10 views."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from omnissl.core.types import ViewSet
from omnissl.objectives._pretext import grid_tiles
from omnissl.objectives.colorization import ab_classes, build_colorization, rgb_to_lab
from omnissl.objectives.jigsaw import build_jigsaw, maximal_hamming_permutations
from omnissl.objectives.relative_patch import NEIGHBOURS, build_relative_patch
from omnissl.objectives.rotation import build_rotation, rotated_copies


def test_rotated_copies_and_loss_by_hand(tiny_encoder) -> None:
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.float32).view(2, 1, 2, 2)
    copies, labels = rotated_copies(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert copies[2, 0].tolist() == [[1.0, 3.0], [0.0, 2.0]]  # image 0 turned 90° counter-clockwise
    assert torch.equal(copies[4], x[0].flip(-1).flip(-2))
    objective = build_rotation(encoder=tiny_encoder(in_features=4)).eval()
    out = objective(ViewSet(global_views=[x]))
    logits = objective.head(objective.encoder(copies).pooled)
    manual = sum(-F.log_softmax(logits[i], dim=0)[labels[i]] for i in range(8)) / 8
    assert torch.isclose(out.loss, manual, rtol=1e-5)


def test_grid_tiles_cut_the_jittered_cells() -> None:
    x = torch.arange(2 * 3 * 9 * 9).view(2, 3, 9, 9)
    jitter = torch.zeros(2, 9, 2, dtype=torch.long)
    jitter[1, 5] = torch.tensor([1, 0])  # image 1, cell (1, 2) moves one row down
    tiles, size = grid_tiles(x, grid=3, gap=1, jitter=jitter)
    assert size == 2 and tiles.shape == (2, 9, 3, 2, 2)
    assert torch.equal(tiles[0, 4], x[0, :, 3:5, 3:5])
    assert torch.equal(tiles[1, 5], x[1, :, 4:6, 6:8])


def test_relative_patch_label_names_the_neighbour(tiny_encoder, monkeypatch) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 12, 12)
    objective = build_relative_patch(encoder=tiny_encoder(in_features=3 * 3 * 3), gap=1, hidden_dim=0).eval()
    seen = []
    original = objective.encoder.forward
    monkeypatch.setattr(objective.encoder, "forward", lambda t: (seen.append(t), original(t))[1])
    torch.manual_seed(3)
    out = objective(ViewSet(global_views=[x]))
    torch.manual_seed(3)
    label = torch.randint(0, 8, (4,))
    jitter = torch.randint(0, 2, (4, 9, 2))
    tiles, _ = grid_tiles(x, grid=3, gap=1, jitter=jitter)
    expected = torch.cat([tiles[:, 4], tiles[torch.arange(4), torch.tensor(NEIGHBOURS)[label]]])
    assert torch.equal(seen[0], expected)
    centre, other = objective.encoder(expected).pooled.split(4)
    logits = objective.head(torch.cat([centre, other], 1))
    assert torch.isclose(out.loss, F.cross_entropy(logits, label), rtol=1e-5)


def test_permutation_set_is_algorithm_1_seeded() -> None:
    # an independent brute-force version of Algorithm 1 (mean Hamming distance to the chosen set) on 4 tiles
    every = list(itertools.permutations(range(4)))
    generator = torch.Generator().manual_seed(7)
    chosen = [int(torch.randint(0, len(every), (1,), generator=generator))]
    while len(chosen) < 6:
        scores = [(-1 if i in chosen else sum(sum(a != b for a, b in zip(p, every[c])) for c in chosen), i)
                  for i, p in enumerate(every)]
        best = max(s for s, _ in scores)
        chosen.append(min(i for s, i in scores if s == best))  # argmax takes the first maximum
    got = maximal_hamming_permutations(6, tiles=4, seed=7)
    assert got.tolist() == [list(every[i]) for i in chosen]
    assert torch.equal(maximal_hamming_permutations(20, seed=1), maximal_hamming_permutations(20, seed=1))
    with pytest.raises(ValueError, match="num_permutations"):
        maximal_hamming_permutations(25, tiles=4)


def test_jigsaw_shuffles_tiles_by_the_drawn_permutation(tiny_encoder, monkeypatch) -> None:
    objective = build_jigsaw(encoder=tiny_encoder(in_features=3 * 3 * 3), num_permutations=10, gap=0,
                             hidden_dim=0).eval()
    x = torch.rand(2, 3, 9, 9)
    seen = []
    original = objective.encoder.forward
    monkeypatch.setattr(objective.encoder, "forward", lambda t: (seen.append(t), original(t))[1])
    torch.manual_seed(5)
    out = objective(ViewSet(global_views=[x]))
    torch.manual_seed(5)
    label = torch.randint(0, 10, (2,))
    tiles, _ = grid_tiles(x, grid=3, gap=0, jitter=torch.randint(0, 1, (2, 9, 2)))
    for b in range(2):
        for slot, tile in enumerate(objective.permutations[label[b]].tolist()):
            assert torch.equal(seen[0][b * 9 + slot], tiles[b, tile])
    logits = objective.head(objective.encoder(seen[0]).pooled.view(2, -1))
    assert torch.isclose(out.loss, F.cross_entropy(logits, label), rtol=1e-5)


def test_lab_conversion_and_ab_bins_by_hand(tiny_encoder) -> None:
    colours = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    lab = rgb_to_lab(colours)[0, :, 0].T  # reference values of sRGB red / white / black under D65
    assert torch.allclose(lab[0], torch.tensor([53.24, 80.09, 67.20]), atol=0.05)
    assert torch.allclose(lab[1], torch.tensor([100.0, 0.0, 0.0]), atol=0.05)
    assert torch.allclose(lab[2], torch.tensor([0.0, 0.0, 0.0]), atol=0.05)
    assert ab_classes(torch.tensor([[-110.0, -110.0], [0.0, 0.0], [109.0, -1.0]]), bin_size=20).tolist() == \
        [0, 5 * 11 + 5, 10 * 11 + 5]
    objective = build_colorization(encoder=tiny_encoder(in_features=3 * 4 * 4), ab_bin=20.0, grid=1).eval()
    red = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    red[:, 0] = 255
    grey, targets = objective.split(red)
    assert grey.dtype == torch.uint8 and int(grey[0, 0, 0, 0]) == round(53.24 / 100 * 255)
    assert targets.tolist() == [(math.floor((80.09 + 110) / 20)) * 11 + math.floor((67.20 + 110) / 20)] * 2
    out = objective(ViewSet(global_views=[red]))
    logits = objective.head(objective.encoder(grey).pooled)
    assert torch.isclose(out.loss, F.cross_entropy(logits, targets), rtol=1e-5)


@pytest.mark.parametrize("build", [
    lambda e: build_rotation(encoder=e),
    lambda e: build_relative_patch(encoder=e, hidden_dim=64),
    lambda e: build_jigsaw(encoder=e, num_permutations=8, hidden_dim=64),
    lambda e: build_colorization(encoder=e, ab_bin=44.0, grid=2),
], ids=["rotation", "relative_patch", "jigsaw", "colorization"])
def test_pretext_task_trains_on_real_images(build, conv_encoder, real_views) -> None:
    # the task's draws (labels, jitter) are re-seeded every step, so the loss must fall by fitting them
    torch.manual_seed(0)
    objective = build(conv_encoder(dim=16)).train()
    views = real_views(count=1, batch=16)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3, weight_decay=0.0)
    losses = []
    for _ in range(8):
        torch.manual_seed(1)
        loss = objective(views).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and sum(losses[-3:]) / 3 < losses[0], losses
