from __future__ import annotations

import pytest
import torch

from omnissl.augment.policy import build_policy
from omnissl.core.config import Augment, recipe_from_dict
from omnissl.core.errors import ConfigError


def _augment(raw: dict) -> Augment:
    return Augment.model_validate(raw)


def test_views_differ_and_keep_the_batch() -> None:
    policy = build_policy(_augment({"global": {"count": 2, "ops": [{"name": "color_jitter", "p": 1.0}]},
                                    "local": {"count": 3, "ops": [{"name": "random_resized_crop", "size": 8}]}}),
                          path="augment")
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    views = policy(x)
    assert len(views.global_views) == 2 and len(views.local_views) == 3
    assert not torch.equal(views.global_views[0], views.global_views[1])
    assert views.local_views[0].shape == (4, 3, 8, 8)
    assert views.original is x


def test_per_view_ops_make_asymmetric_views() -> None:
    policy = build_policy(_augment({"global": {"count": 2, "ops": [],
                                               "per_view": [[{"name": "solarize", "threshold": 0.0, "p": 1.0}], []]}}),
                          path="augment")
    x = torch.rand(2, 3, 4, 4)
    first, second = policy(x).global_views
    assert torch.allclose(first, 1 - x) and torch.equal(second, x)


def test_per_view_needs_one_list_per_view_and_names_bad_ops() -> None:
    with pytest.raises(ConfigError, match="per_view has 1 lists for count=2"):
        recipe_from_dict({"name": "t", "data": {"name": "digits"}, "encoder": {"name": "resnet10"},
                          "objective": {"name": "simclr"},
                          "augment": {"global": {"count": 2, "per_view": [[]]}}})
    with pytest.raises(ConfigError, match=r"augment\.global\.per_view\[1\]\[0\]\.name: unknown augmentation"):
        build_policy(_augment({"global": {"count": 2, "per_view": [[], [{"name": "solarise"}]]}}), path="augment")
