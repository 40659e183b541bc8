"""The optimizers a recipe can name: Adam's weight decay is an L2 term inside the gradient, AdamW's is decoupled.

The graph papers' code (DGI, GRACE, GraphMAE, InfoGraph) uses ``torch.optim.Adam(weight_decay=…)``; with AdamW the
same number shrinks a weight by only ``lr · wd`` per step, so a recipe copying the paper's value must say ``adam``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from omnissl.core.config import TrainConfig
from omnissl.core.errors import ConfigError
from omnissl.train.optim import build_optimizer


def one_step_on_a_zero_gradient(optimizer: str) -> float:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    step = build_optimizer(model, TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.01))
    model.weight.grad = torch.zeros_like(model.weight)
    step.step()
    return float(model.weight)


def test_adam_decay_is_coupled_and_adamw_decoupled():
    # Adam: the gradient is wd · w = 0.01, and Adam's normalised first step moves w by lr = 0.1 whatever its size.
    assert one_step_on_a_zero_gradient("adam") == pytest.approx(0.9, abs=1e-4)
    # AdamW: Adam's step on a zero gradient is 0; the decay alone moves w by lr · wd · w = 0.001.
    assert one_step_on_a_zero_gradient("adamw") == pytest.approx(0.999, abs=1e-6)


def test_biases_get_no_decay_with_adam_either():
    model = nn.Linear(2, 2)
    groups = build_optimizer(model, TrainConfig(optimizer="adam", weight_decay=0.5)).param_groups
    assert [len(g["params"]) for g in groups] == [1, 1] and groups[1]["weight_decay"] == 0.0


def test_unknown_optimizer_is_refused():
    with pytest.raises((ConfigError, ValueError), match="optimizer"):
        TrainConfig(optimizer="adagrad")
