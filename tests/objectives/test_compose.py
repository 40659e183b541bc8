"""compose: weighted sum of terms, per-term logs, term validation paths, schedules, one shared EMA teacher."""

from __future__ import annotations

import pytest
import torch
from omnissl_image.encoders import build_vit

from omnissl.core.config import Component
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import BuildContext, build_component
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import ViewSet
from omnissl.objectives.compose import term_weight


def compose(encoder, terms, **spec):
    return build_component(OBJECTIVES, Component(name="compose", terms=terms), "objective",
                           BuildContext(input_spec=spec, context={"encoder": encoder}))


def tiny_vit():
    torch.manual_seed(0)
    return build_vit(image_size=8, patch_size=4, dim=16, depth=1, heads=2)


def image_views(batch: int = 4) -> ViewSet:
    g = torch.Generator().manual_seed(1)
    return ViewSet(global_views=[torch.randint(0, 256, (batch, 3, 8, 8), generator=g, dtype=torch.uint8)
                                 for _ in range(2)])


def test_loss_is_the_weighted_sum_of_the_terms_each_logged(tiny_encoder) -> None:
    encoder = tiny_encoder(in_features=4)
    objective = compose(encoder, [{"name": "barlow_twins", "weight": 0.25, "projection_dim": 8, "hidden_dim": 8},
                                  {"name": "vicreg", "weight": 2.0, "expander_dim": 8}]).train()
    views = ViewSet(global_views=[torch.randn(6, 4), torch.randn(6, 4)])
    out = objective(views)
    barlow, vicreg = objective.terms
    assert objective.labels == ["barlow_twins", "vicreg"]
    assert torch.isclose(out.loss, 0.25 * barlow(views).loss + 2.0 * vicreg(views).loss, rtol=1e-6)
    assert torch.isclose(out.logs["barlow_twins/loss"], barlow(views).loss.detach(), rtol=1e-6)
    assert out.logs["vicreg/weight"] == 2.0 and "vicreg/loss" in out.logs
    assert barlow.encoder is encoder and vicreg.encoder is encoder and objective.requires == "pooled"


def test_a_term_is_validated_like_a_component_with_its_path(tiny_encoder) -> None:
    encoder = tiny_encoder(in_features=4)
    with pytest.raises(ConfigError, match=r"^objective\.terms\[1\]\.foo: unknown parameter"):
        compose(encoder, [{"name": "simclr"}, {"name": "simclr", "foo": 1}])
    with pytest.raises(ConfigError, match=r"^objective\.terms\[0\]\.name: .*unknown objective 'simclrr'"):
        compose(encoder, [{"name": "simclrr"}])
    with pytest.raises(ConfigError, match=r"^objective\.terms\[0\]\.weight: expected a number"):
        compose(encoder, [{"name": "simclr", "weight": "high"}])
    with pytest.raises(ConfigError, match=r"^objective\.terms: give at least one term"):
        compose(encoder, [])


def test_context_reaches_the_terms_and_repeats_get_distinct_labels(tiny_encoder) -> None:
    objective = compose(tiny_encoder(in_features=4), [{"name": "simclr"}, {"name": "simclr", "temperature": 0.1},
                                                      {"name": "simclr", "log_as": "sharp"}])
    assert objective.labels == ["simclr", "simclr#2", "sharp"]
    assert objective.terms[1].temperature == 0.1


def test_linear_weight_schedule_follows_the_steps_done(tiny_encoder) -> None:
    assert term_weight(0, 10, start=1.0, end=0.0, steps=None) == 1.0
    assert term_weight(5, 10, start=1.0, end=0.0, steps=None) == 0.5
    assert term_weight(7, 10, start=0.0, end=1.0, steps=4) == 1.0
    objective = compose(tiny_encoder(in_features=4), [{"name": "simclr", "weight": 0.1, "weight_end": 0.5}])
    objective.on_step_end(step=1, total_steps=4)  # two steps done of four
    assert objective.current_weights() == pytest.approx([0.3])
    restored = compose(tiny_encoder(in_features=4), [{"name": "simclr", "weight": 0.1, "weight_end": 0.5}])
    restored.load_state_dict(objective.state_dict())  # the schedule resumes from the checkpoint
    assert restored.current_weights() == pytest.approx([0.3])


def test_dino_and_ibot_share_one_teacher_moved_once_per_step() -> None:
    encoder = tiny_vit()
    objective = compose(encoder, [
        {"name": "dino", "out_dim": 16, "hidden_dim": 8, "bottleneck_dim": 8, "momentum": 0.5, "momentum_end": 0.5},
        {"name": "ibot", "out_dim": 16, "hidden_dim": 8, "bottleneck_dim": 8, "momentum": 0.9, "momentum_end": 0.9},
        {"name": "koleo", "weight": 0.1}]).train()
    dino, ibot, _ = objective.terms
    assert ibot.teacher_encoder is dino.teacher_encoder and objective.shared_teacher_terms == ["ibot"]
    assert objective.requires == "tokens" and objective.towers["main"] is dino.teacher_encoder
    frozen = sum(p.numel() for p in objective.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for p in encoder.parameters()) + sum(
        p.numel() for head in (dino.teacher_head, ibot.teacher_head) for p in head.parameters())
    out = objective(image_views())
    assert {"dino/loss", "ibot/loss", "koleo/loss", "ibot/mim_ce"} <= set(out.logs)
    out.loss.backward()
    before = [p.detach().clone() for p in dino.teacher_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.3)
    objective.on_step_end(step=0, total_steps=10)
    for t, t0, s in zip(dino.teacher_encoder.parameters(), before, encoder.parameters()):
        assert torch.allclose(t, 0.5 * t0 + 0.5 * s, atol=1e-6)  # DINO's momentum, applied once
    assert torch.allclose(ibot.teacher_head.last_layer.weight, ibot.head.last_layer.weight)  # its own head moved
