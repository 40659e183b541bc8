"""Issue 18 item 3: no choice reads test labels. The k-NN monitor and ``checkpoints/best.pt`` use a validation
split carved from train (recorded in ``splits.json``); the probe's decay, the SVM's C and the TF-IDF row's C are
chosen on train parts. Each test poisons (or hides) the test split and checks that every choice stays the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from omnissl.core.config import load_recipe
from omnissl.data.tensors import TensorRows
from omnissl.eval.engine import build_protocols, run_table
from omnissl.eval.protocol import EvalContext, Row
from omnissl.train import checkpoint as ckpt
from omnissl.train.assemble import assemble
from omnissl.train.runner import train

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16", "train.steps=4",
        "train.batch_size=32", "train.log_every=2", "train.warmup_steps=1", "train.knn_every=2",
        "train.knn_samples=120", "train.checkpoint_every=0", "train.max_minutes=null"]


class Untouchable(Dataset[Any]):
    """A test split whose every read fails: whatever reads it during training makes a choice from test data."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        raise AssertionError("the test split was read during training")


def poisoned(dataset: TensorRows, *, seed: int = 0) -> TensorRows:
    """The same inputs with the labels shuffled."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return TensorRows(dataset.x, dataset.labels[order])


def test_knn_monitor_and_best_checkpoint_never_read_the_test_split(tmp_path: Path, data_root: Path) -> None:
    assembled = assemble(load_recipe(DEMO, TINY), root=data_root)
    assembled.bundle.test = Untouchable(len(assembled.bundle.test))  # type: ignore[arg-type]
    train(assembled, tmp_path / "run")
    best = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert 0.0 <= best["knn"] <= 1.0 and splits["source"] == "train" and splits["val"] == len(splits["val_indices"])
    labels = assembled.bundle.train.labels  # type: ignore[attr-defined]
    val = torch.tensor(splits["val_indices"])
    # Stratified: every class keeps its share of the validation part (±1 row), so the monitor is not biased.
    for c in labels.unique():
        share = int((labels[val] == c).sum())
        assert abs(share - round(0.1 * int((labels == c).sum()))) <= 1
    # Same seed, same carve: the hash in splits.json identifies it.
    again = tmp_path / "again"
    assembled = assemble(load_recipe(DEMO, TINY), root=data_root)
    train(assembled, again)
    assert json.loads((again / "splits.json").read_text())["val_indices_sha256"] == splits["val_indices_sha256"]
    assert ckpt.load_checkpoint(again / "checkpoints" / "best.pt")["knn"] == best["knn"]


@pytest.fixture(scope="module")
def digits_bundle(data_root: Path) -> Any:
    recipe = load_recipe(DEMO, ["encoder.width=8"])
    return recipe, assemble(recipe, root=data_root)


def _choices(recipe: Any, assembled: Any, test_set: Any, protocols: list[dict[str, Any]]) -> dict[str, Any]:
    eval_config = recipe.eval.model_copy(update={"protocols": None})
    from omnissl.core.config import Component

    eval_config.protocols = [Component(**p) for p in protocols]
    built = build_protocols(eval_config, assembled.bundle)
    ctx = EvalContext(bundle=assembled.bundle, train_set=assembled.bundle.train, test_set=test_set,
                      device=torch.device("cpu"), dataset_name="digits")
    table = run_table([Row(name="raw input", kind="raw")], built, ctx, tower="main")
    cells = table.rows[0]["cells"]
    return {name: cell["details"] for name, cell in cells.items()}, {n: c["score"]["mean"] for n, c in cells.items()}


def test_probe_decay_and_label_efficiency_choices_ignore_test_labels(digits_bundle: Any) -> None:
    recipe, assembled = digits_bundle
    protocols = [{"name": "linear_probe", "seeds": 2, "max_iter": 30, "weight_decays": [0.0, 1e-2, 1.0]}]
    honest, scores = _choices(recipe, assembled, assembled.bundle.test, protocols)
    cheated, poisoned_scores = _choices(recipe, assembled, poisoned(assembled.bundle.test), protocols)
    assert honest["linear_probe"]["chosen_weight_decay"] == cheated["linear_probe"]["chosen_weight_decay"]
    assert scores["linear_probe"] > 0.5 > poisoned_scores["linear_probe"], "the poison must reach the final score"


def test_svm_c_is_chosen_on_train_only(data_root: Path) -> None:
    recipe = load_recipe(Path(DEMO).parents[1] / "timeseries" / "ts2vec.yaml", [])
    assembled = assemble(recipe, root=data_root)
    protocols = [{"name": "ts_rbf_svm"}]
    honest, scores = _choices(recipe, assembled, assembled.bundle.test, protocols)
    cheated, poisoned_scores = _choices(recipe, assembled, poisoned(assembled.bundle.test), protocols)
    assert honest["ts_rbf_svm"]["C"] == cheated["ts_rbf_svm"]["C"]
    assert honest["ts_rbf_svm"]["cv_accuracy"] == cheated["ts_rbf_svm"]["cv_accuracy"]
    assert scores["ts_rbf_svm"] > poisoned_scores["ts_rbf_svm"]
