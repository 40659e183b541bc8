"""TS2Vec pieces that follow the authors' code (Yue et al., 2022; github.com/yuezhihan/ts2vec): weight averaging,
per-channel standardisation of multivariate sets, the SVM's no-CV rule for small train splits, and the conv's own
symmetric padding (issue 24)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omnissl_timeseries.data import standardize_channels, ucr_uea
from omnissl_timeseries.encoders import SamePadConv, build_ts2vec_cnn
from omnissl_timeseries.svm import build_ts_rbf_svm, svm_accuracy
from omnissl_timeseries.ts2vec import build_ts2vec
from torch.nn import functional as F

from omnissl.core.types import ViewSet
from omnissl.train.optim import parameter_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def test_symmetric_padding_is_the_convs_own_and_matches_explicit_padding() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 17)
    for kernel, dilation, causal in [(3, 1, False), (3, 4, False), (2, 1, False), (3, 2, True)]:
        conv = SamePadConv(3, 5, kernel, dilation, causal)
        out = conv(x)
        assert out.shape == (2, 5, 17)
        field = (kernel - 1) * dilation + 1
        left = field - 1 if causal else field // 2
        explicit = F.conv1d(F.pad(x, (left, field - 1 - left)), conv.conv.weight, conv.conv.bias,
                            dilation=dilation)
        torch.testing.assert_close(out, explicit)
        # odd field, not causal: no F.pad copy (the speed-up); otherwise the tensor is padded first
        assert conv.pad_input == (causal or field % 2 == 0)
    causal = SamePadConv(1, 1, 3, 1, True)
    bumped = x[:1, :1].clone()
    bumped[..., 10] += 5.0
    assert torch.equal(causal(bumped)[..., :10], causal(x[:1, :1])[..., :10])  # the future stays unseen


def _steps(objective: torch.nn.Module, batch: torch.Tensor, count: int) -> list[dict[str, torch.Tensor]]:
    """``count`` AdamW steps as the runner takes them (parameter groups, then on_step_end); the encoder's weights
    after each, initial weights first."""
    optimizer = torch.optim.AdamW(parameter_groups(objective), lr=0.05)
    seen = [{k: v.clone() for k, v in objective.encoder.state_dict().items()}]
    for step in range(count):
        optimizer.zero_grad()
        objective(ViewSet(global_views=[batch])).loss.backward()
        optimizer.step()
        objective.on_step_end(step=step, total_steps=count)
        seen.append({k: v.clone() for k, v in objective.encoder.state_dict().items()})
    return seen


def test_average_weights_evaluates_the_running_mean_of_every_step() -> None:
    torch.manual_seed(0)
    batch = torch.randn(4, 1, 16)
    encoder = build_ts2vec_cnn(depth=1, hidden_dim=8, output_dim=8, mask_prob=0.5)
    objective = build_ts2vec(encoder=encoder, average_weights=True)
    tower = objective.towers["main"]
    assert tower is not encoder and not any(p.requires_grad for p in tower.parameters())
    trained_ids = {id(p) for g in parameter_groups(objective) for p in g["params"]}  # type: ignore[attr-defined]
    assert trained_ids == {id(p) for p in encoder.parameters()}  # the average is never an optimizer parameter
    seen = _steps(objective, batch, 3)
    averaged = objective.towers["main"].state_dict()
    for key, value in averaged.items():
        expected = torch.stack([s[key] for s in seen]).mean(dim=0)  # initial weights + 3 steps, equal weights
        torch.testing.assert_close(value, expected)
        assert not torch.equal(value, seen[-1][key])  # not the last weights
    state = objective.state_dict()
    assert int(state["averaged.n_averaged"]) == 4 and any(k.startswith("averaged.module.") for k in state)
    # off: evaluation reads the trained encoder itself
    plain = build_ts2vec(encoder=build_ts2vec_cnn(depth=1, hidden_dim=8, output_dim=8))
    assert plain.towers["main"] is plain.encoder and plain.averaged is None


def test_standardize_channels_uses_train_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = np.stack([rng.normal(5, 2, (20, 30)), rng.normal(-3, 0.5, (20, 30)), np.full((20, 30), 7.0)], 1)
    train[0, :, 25:] = np.nan  # a padded tail stays padding and is not counted
    test = rng.normal(100, 50, (6, 3, 30))
    out_train, out_test = standardize_channels(train, test)
    assert np.isnan(out_train[0, :, 25:]).all() and not np.isnan(out_train[1:]).any()
    np.testing.assert_allclose(np.nanmean(out_train[:, :2], axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.nanstd(out_train[:, :2], axis=(0, 2)), 1.0, atol=1e-5)
    assert np.all(out_train[1:, 2] == 0.0)  # constant channel: centred, scale 1 (no division by 0)
    mean, std = np.nanmean(train[:, 0]), np.nanstd(train[:, 0])
    np.testing.assert_allclose(out_test[:, 0], (test[:, 0] - mean) / std, rtol=1e-5)
    _, other_test = standardize_channels(train, test * 10)  # the test split moves nothing on train
    np.testing.assert_allclose(standardize_channels(train, test * 10)[0], out_train)
    assert not np.allclose(other_test, out_test)


def test_ucr_uea_standardizes_multivariate_sets_only(data_root: Path) -> None:
    motions = ucr_uea(dataset="BasicMotions", standardize="multivariate", data_root=data_root)
    raw = ucr_uea(dataset="BasicMotions", data_root=data_root)
    values = motions.train.values
    torch.testing.assert_close(values.mean(dim=(0, 2)), torch.zeros(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(values.std(dim=(0, 2), unbiased=False), torch.ones(6), atol=1e-4, rtol=0)
    assert not torch.allclose(raw.train.values.std(dim=(0, 2)), torch.ones(6), atol=0.05)
    vowels = ucr_uea(dataset="JapaneseVowels", standardize="multivariate", data_root=data_root)
    vowels_raw = ucr_uea(dataset="JapaneseVowels", data_root=data_root)
    assert torch.equal(torch.isnan(vowels.train.values), torch.isnan(vowels_raw.train.values))  # padding kept
    gun = ucr_uea(dataset="GunPoint", standardize="multivariate", data_root=data_root)
    assert torch.equal(gun.train.values, ucr_uea(dataset="GunPoint", data_root=data_root).train.values)
    gun_channel = ucr_uea(dataset="GunPoint", standardize="channel", data_root=data_root)
    assert not torch.equal(gun_channel.train.values, gun.train.values)


def test_svm_skips_cv_on_small_train_splits_like_the_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(15, 4, generator=generator) * 6

    def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(15).repeat_interleave(per_class)
        return centres[labels] + torch.randn(len(labels), 4, generator=generator), labels

    (x4, y4), (x_test, y_test) = draw(4), draw(3)  # 60 series ≥ 50, but 60 // 15 = 4 < 5 per class
    assert svm_accuracy(x4, y4, x_test, y_test).folds == 0
    assert math.isinf(svm_accuracy(x4, y4, x_test, y_test).C)
    assert svm_accuracy(x4, y4, x_test, y_test, cv_min_per_class=0).folds == 4  # CV, folds = rarest class
    two = torch.cat([torch.randn(20, 3, generator=generator) + 4, torch.randn(20, 3, generator=generator) - 4])
    labels = torch.arange(2).repeat_interleave(20)
    small = svm_accuracy(two, labels, two, labels)  # 40 < 50 series: hard margin, no CV (ArrowHead, BasicMotions)
    assert small.folds == 0 and math.isinf(small.C) and small.cv_accuracy is None
    assert svm_accuracy(two, labels, two, labels, cv_min_train=40).folds == 5
    assert build_ts_rbf_svm().settings == {"cv_seed": None, "max_folds": 5, "cv_min_train": 50,
                                         "cv_min_per_class": 5}
    with pytest.raises(ValueError, match="cv_min_train"):
        build_ts_rbf_svm(cv_min_train=-1)
