"""Self-training after SSL (issue 23 part 5): pseudo-labels help where they must (two elongated blobs, one label per
class), every choice is made on validation (poisoned test labels change scores, never a choice), the labelled draws
are label_efficiency's, and bad fractions / unlabelled data fail with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from omnissl.core.config import Component, EvalConfig
from omnissl.core.errors import ConfigError
from omnissl.core.types import DataBundle
from omnissl.data.tensors import TensorRows, collate_rows
from omnissl.eval.engine import build_protocols
from omnissl.eval.label_efficiency import probe_at_fractions
from omnissl.eval.self_training import build_pseudolabel, select_pseudo_labels, self_training

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes at x = ±2, spread 0.5 across the gap and 3 along it: the boundary through two labelled points
    is usually tilted, while the confident points of each blob pin it to x = 0."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * torch.tensor([0.5, 3.0])
    x[:, 0] += torch.where(y == 1, 2.0, -2.0)
    return x, y


def _choices(found: dict[str, Any]) -> list[Any]:
    return [(r["weight_decay"], r["teacher_val_accuracy"], r["rounds"]) for e in found.values() for r in e["per_seed"]]


def test_pseudo_labels_beat_the_plain_probe_with_one_label_per_class() -> None:
    found = self_training(blobs(400, 0), blobs(400, 1), fractions=[0.005], seeds=5, num_classes=2)["0.5%"]
    assert [s["labelled"] for s in found["sizes"]] == [2] * 5  # one label per class
    teacher, student = found["probe"]["per_seed"], found["pseudo"]["per_seed"]
    assert found["pseudo"]["mean"] - found["probe"]["mean"] > 0.03, (teacher, student)
    assert all(s >= t - 0.01 for s, t in zip(student, teacher)), (teacher, student)
    kept = [r["rounds"][-1] for r in found["per_seed"]]
    assert sum(k["pseudo_labels"] > 0 for k in kept) >= 3
    assert all(k["pseudo_label_accuracy"] > 0.95 for k in kept if k["pseudo_labels"])


def test_keep_share_zero_is_the_teacher_and_rounds_stop_when_nothing_helps() -> None:
    found = self_training(blobs(200, 2), blobs(100, 3), fractions=[0.01], seeds=2, keep_fractions=[0.0],
                          rounds=3, num_classes=2, include_label_efficiency=False)["1%"]
    assert found["probe"]["per_seed"] == found["pseudo"]["per_seed"]
    assert all(len(r["rounds"]) == 1 and r["rounds"][0]["keep"] == 0.0 for r in found["per_seed"])
    assert "label_efficiency" not in found


def test_the_labelled_draws_are_label_efficiencys() -> None:
    train, test = blobs(300, 4), blobs(100, 5)
    found = self_training(train, test, fractions=[0.1], seeds=2, num_classes=2)["10%"]
    reference = probe_at_fractions(train, test, fractions=[0.1], seeds=2, num_classes=2)["10% labels"]
    assert found["labels"] == reference["labels"] == 30
    assert found["label_efficiency"]["per_seed"] == reference["per_seed"]
    for size in found["sizes"]:  # labelled, validation and pool partition train
        assert size["labelled"] + size["validation"] + size["pool"] == 300


def test_poisoned_test_labels_change_scores_but_no_choice() -> None:
    train, (x_test, y_test) = blobs(300, 6), blobs(200, 7)
    poisoned = 1 - y_test  # every test label wrong
    settings = {"fractions": [0.01, 0.1], "seeds": 2, "rounds": 2, "num_classes": 2}
    honest = self_training(train, (x_test, y_test), **settings)
    cheated = self_training(train, (x_test, poisoned), **settings)
    assert _choices(honest) == _choices(cheated)
    assert honest["1%"]["pseudo"]["mean"] > 0.5 > cheated["1%"]["pseudo"]["mean"], "the poison must reach the score"


def test_per_class_selection_follows_the_labelled_prior_and_confidence() -> None:
    logits = torch.tensor([[5.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 0.5], [2.0, 0.0]])
    rows, labels = select_pseudo_labels(logits, torch.tensor([0.5, 0.5]), keep=0.34)  # round(0.34·6·0.5) = 1 each
    assert rows.tolist() == [0, 3] and labels.tolist() == [0, 1]
    rows, labels = select_pseudo_labels(logits, torch.tensor([0.9, 0.1]), keep=1.0)  # 5 of class 0 asked, 4 exist
    assert rows.tolist() == [0, 1, 2, 3, 5] and labels.tolist() == [0, 0, 0, 1, 0]


@pytest.mark.parametrize("fractions", [[0.0], [1.0], [0.1, 1.5], [-0.01]])
def test_bad_fractions_name_the_range(fractions: list[float]) -> None:
    with pytest.raises(ValueError, match=r"fractions: label fractions must lie in \(0, 1\)"):
        build_pseudolabel(fractions=fractions)
    with pytest.raises(ValueError, match="must lie in"):
        self_training(blobs(40, 0), blobs(20, 1), fractions=fractions)


def test_bad_settings_and_unlabelled_rows_fail_clearly() -> None:
    with pytest.raises(ValueError, match="keep_fractions"):
        build_pseudolabel(keep_fractions=[0.5, 1.2])
    with pytest.raises(ValueError, match="rounds"):
        build_pseudolabel(rounds=0)
    x, y = blobs(40, 0)
    y[:5] = -1
    with pytest.raises(ConfigError, match=r"5 of 40 rows are unlabelled"):
        self_training((x, y), blobs(20, 1), fractions=[0.1])


def test_a_recipe_lists_it_in_eval_protocols() -> None:
    x, y = blobs(60, 0)
    bundle = DataBundle(train=TensorRows(x, y), test=TensorRows(x, y), collate=collate_rows, num_classes=2)
    config = EvalConfig(protocols=[Component(name="pseudolabel", fractions=[0.05], rounds=2)], probe_seeds=2)
    (protocol,) = build_protocols(config, bundle)
    assert protocol.name == "pseudolabel" and protocol.settings["seeds"] == 2 and protocol.settings["rounds"] == 2
    with pytest.raises(ConfigError, match=r"eval\.protocols\.0"):
        build_protocols(EvalConfig(protocols=[Component(name="pseudolabel", fractions=[2.0])]), bundle)
