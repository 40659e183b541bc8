"""Every shipped recipe (like torchtune's config tests): it says how to run it, it validates on a synthetic batch,
its named variants validate, and it trains a few steps on its real data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.workflows.session import dry_run
from omnissl.train.runner import Trainer, read_metrics

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
IDS = [str(p.relative_to(ROOT / "recipes")) for p in RECIPES]
SMOKE = ["train.steps=2", "train.batch_size=8", "train.knn_every=0", "train.checkpoint_every=0",
         "train.max_minutes=null", "train.log_every=1", "train.num_workers=0"]


def test_there_are_recipes() -> None:
    assert RECIPES, "no recipes found"


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_first_line_is_its_command(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# omnissl train recipes/"), f"{path.name}: first line must be the command that runs it"
    assert str(path.relative_to(ROOT)) in first


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_validates_on_a_synthetic_batch(path: Path) -> None:
    recipe = load_recipe(path)
    loss = dry_run(assemble(recipe, synthetic=16))
    assert torch.isfinite(torch.tensor(loss))
    for variant in recipe.variants:
        load_recipe(path, variant=variant)  # every documented variant is a valid recipe too


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_trains_a_few_steps_on_real_data(path: Path, data_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(path, [*SMOKE, "train.accumulate=1"])
    result = Trainer(assemble(recipe, root=data_root), tmp_path / "run").fit()
    assert result.steps_done == 2
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
