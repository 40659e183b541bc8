"""The one EMA-teacher helper (``MomentumSchedule``) behind BYOL, MoCo v2/v3, DINO and data2vec.

``RECORDED`` holds each objective's losses over 3 SGD steps (and one more forward) computed with the implementation
before the helper existed (commit b5cd44a's parent: each objective scheduled and applied its own momentum), on this
fixed tiny set-up; the helper must reproduce them to float32 rounding (bit-identical on the recording machine), since
the teacher weights feed every later loss. SGD, not Adam: Adam's first step is ``lr·sign(g)``, so a gradient that is
±1e-10 on one CPU and 0 on another moves a weight by a whole ``lr`` and the losses by ~1 % (seen in CI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from omnissl.core.types import ViewSet
from omnissl.objectives.byol import build_byol
from omnissl.objectives.data2vec import build_data2vec
from omnissl.objectives.dino import build_dino
from omnissl.objectives.ema import MomentumSchedule, cosine_momentum, linear_momentum
from omnissl.objectives.moco_v2 import build_moco_v2
from omnissl.objectives.moco_v3 import build_moco_v3

# Recorded with one intra-op thread (a different thread count changes float reduction order, not the method).
pytestmark = pytest.mark.usefixtures("one_thread")

RECORDED = {
    "byol": [3.098601818084717, 2.2603635787963867, 1.6912641525268555, 1.3034788370132446],
    "data2vec": [1.5304769277572632, 1.2738910913467407, 1.1781386137008667, 1.0286754369735718],
    "dino": [1.1453721523284912, 0.18690840899944305, 9.179074368148576e-06, 9.17909164854791e-06],
    "moco_v2": [0.8535043597221375, 1.8889691829681396, 2.3295042514801025, 2.364501953125],
    "moco_v3": [2.421840190887451, 2.4728000164031982, 1.5717284679412842, 1.0732051134109497],
}

# Each builder takes the conftest's encoder factories: (tiny_encoder, toy_token_encoder).
BUILDERS: dict[str, Callable[..., Any]] = {
    "byol": lambda tiny, token, m=0.5: build_byol(encoder=tiny(12), projection_dim=8, hidden_dim=16, momentum=m),
    "moco_v2": lambda tiny, token, m=0.5: build_moco_v2(encoder=tiny(12), queue_size=16, projection_dim=8, hidden_dim=16,
                                                 momentum=m),
    "moco_v3": lambda tiny, token, m=0.5: build_moco_v3(encoder=tiny(12), projection_dim=8, hidden_dim=16,
                                                 predictor_hidden_dim=16, momentum=m),
    "dino": lambda tiny, token, m=0.5: build_dino(encoder=tiny(12), out_dim=10, hidden_dim=16, bottleneck_dim=8,
                                           momentum=m),
    "data2vec": lambda tiny, token, m=0.5: build_data2vec(encoder=token(), top_k=2, decoder_dim=16, decoder_depth=1,
                                                   decoder_heads=2, momentum=m, momentum_end=0.9),
}


@pytest.fixture
def make(tiny_encoder: Any, toy_token_encoder: Any) -> Callable[..., Any]:
    return lambda name, momentum=0.5: BUILDERS[name](tiny_encoder, toy_token_encoder, momentum)


def _views(name: str) -> ViewSet:
    generator = torch.Generator().manual_seed(1)
    if name == "data2vec":
        return ViewSet(global_views=[{"values": torch.randn(4, 10, 6, generator=generator)}])
    return ViewSet(global_views=[torch.randn(8, 12, generator=generator) for _ in range(2)],
                   local_views=[torch.randn(8, 12, generator=generator)])


def _run(name: str, make: Callable[..., Any], momentum: float = 0.5) -> tuple[Any, list[float]]:
    torch.manual_seed(0)
    objective = make(name, momentum)
    views = _views(name)
    torch.manual_seed(0)  # data2vec draws its masks in the forward
    optimizer = torch.optim.SGD([p for p in objective.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for step in range(3):
        output = objective(views)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        objective.on_step_end(step=step, total_steps=3)
        losses.append(float(output.loss.detach()))
    torch.manual_seed(5)
    return objective, [*losses, float(objective(views).loss.detach())]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_losses_match_the_implementation_before_the_helper(name: str, make: Any) -> None:
    objective, losses = _run(name, make)
    assert losses == pytest.approx(RECORDED[name], rel=1e-5, abs=1e-7)
    assert isinstance(objective.ema, MomentumSchedule)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_tolerance_still_sees_a_momentum_off_by_a_hundredth(name: str, make: Any) -> None:
    _, losses = _run(name, make, momentum=0.51)
    assert losses != pytest.approx(RECORDED[name], rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_momentum_is_checkpointed_and_old_checkpoints_still_load(name: str, make: Any) -> None:
    objective, _ = _run(name, make)
    state = objective.state_dict()
    expected = objective.ema.value_at(2, 3)
    assert float(state["ema.momentum"]) == pytest.approx(expected)
    fresh = make(name)
    assert fresh.ema.current == 0.5
    fresh.load_state_dict(state)
    assert fresh.ema.current == pytest.approx(expected)  # a resumed run logs the momentum it had
    old = {k: v for k, v in state.items() if k != "ema.momentum"}  # written before the momentum was a buffer
    older = make(name)
    older.load_state_dict(old)
    assert older.ema.current == 0.5


def test_schedules() -> None:
    cosine = MomentumSchedule(base=0.9, final=1.0)
    assert [cosine.value_at(k, 10) for k in (0, 10)] == [cosine_momentum(0, 10, base=0.9), 1.0]
    linear = MomentumSchedule(base=0.999, final=0.9999, schedule="linear")
    assert linear.value_at(9, 10) == pytest.approx(0.9999) and linear.value_at(0, 10) == pytest.approx(0.99909)
    assert linear_momentum(0, 10, base=0.5, final=1.0) == 0.55
    with pytest.raises(ValueError, match="cosine"):
        MomentumSchedule(base=0.9, final=1.0, schedule="step")  # type: ignore[arg-type]
