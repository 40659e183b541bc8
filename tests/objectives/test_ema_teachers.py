"""The one EMA-teacher helper (``MomentumSchedule``) behind BYOL, MoCo v2/v3, DINO and data2vec.

``RECORDED`` holds each objective's losses over 3 optimizer steps (and one more forward) computed with the
implementation before the helper existed (each objective scheduled and applied its own momentum), on this fixed
tiny set-up; the helper must reproduce them exactly, since the teacher weights feed every later loss.
"""

from __future__ import annotations

from typing import Any, Callable

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
    "byol": [3.098601818084717, 2.300480842590332, 2.070955991744995, 1.7256529331207275],
    "moco_v2": [0.8535043001174927, 1.7831283807754517, 2.4031550884246826, 2.508932590484619],
    "moco_v3": [2.4218404293060303, 2.468925952911377, 1.7494785785675049, 1.3405274152755737],
    "dino": [1.1453725099563599, 0.7496337890625, 0.008188862353563309, 0.0011988740880042315],
    "data2vec": [1.5304769277572632, 0.9676871299743652, 0.9538035988807678, 0.8761678338050842],
}

# Each builder takes the conftest's encoder factories: (tiny_encoder, toy_token_encoder).
BUILDERS: dict[str, Callable[[Any, Any], Any]] = {
    "byol": lambda tiny, token: build_byol(encoder=tiny(12), projection_dim=8, hidden_dim=16, momentum=0.5),
    "moco_v2": lambda tiny, token: build_moco_v2(encoder=tiny(12), queue_size=16, projection_dim=8, hidden_dim=16,
                                                 momentum=0.5),
    "moco_v3": lambda tiny, token: build_moco_v3(encoder=tiny(12), projection_dim=8, hidden_dim=16,
                                                 predictor_hidden_dim=16, momentum=0.5),
    "dino": lambda tiny, token: build_dino(encoder=tiny(12), out_dim=10, hidden_dim=16, bottleneck_dim=8,
                                           momentum=0.5),
    "data2vec": lambda tiny, token: build_data2vec(encoder=token(), top_k=2, decoder_dim=16, decoder_depth=1,
                                                   decoder_heads=2, momentum=0.5, momentum_end=0.9),
}


@pytest.fixture
def make(tiny_encoder: Any, toy_token_encoder: Any) -> Callable[[str], Any]:
    return lambda name: BUILDERS[name](tiny_encoder, toy_token_encoder)


def _views(name: str) -> ViewSet:
    generator = torch.Generator().manual_seed(1)
    if name == "data2vec":
        return ViewSet(global_views=[{"values": torch.randn(4, 10, 6, generator=generator)}])
    return ViewSet(global_views=[torch.randn(8, 12, generator=generator) for _ in range(2)],
                   local_views=[torch.randn(8, 12, generator=generator)])


def _run(name: str, make: Callable[[str], Any], train: Any) -> tuple[Any, list[float]]:
    torch.manual_seed(0)
    objective = make(name)
    views = _views(name)
    losses = train(objective, views, steps=3, lr=1e-2)
    torch.manual_seed(5)
    return objective, [*losses, float(objective(views).loss.detach())]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_losses_match_the_implementation_before_the_helper(name: str, make: Any, train: Any) -> None:
    objective, losses = _run(name, make, train)
    assert losses == RECORDED[name]  # bit-identical, not approximately equal
    assert isinstance(objective.ema, MomentumSchedule)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_momentum_is_checkpointed_and_old_checkpoints_still_load(name: str, make: Any, train: Any) -> None:
    objective, _ = _run(name, make, train)
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
