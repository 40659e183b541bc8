"""Every shipped recipe (like torchtune's config tests): it says how to run it, it validates on a synthetic batch,
every named variant is built and run on a synthetic batch too (not only parsed), and it trains a few steps on
its real data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from omnissl.core.config import Recipe, load_recipe
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import check_components
from omnissl.data.tensors import training_loader
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer, read_metrics
from omnissl.workflows.session import dry_run

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
IDS = [str(p.relative_to(ROOT / "recipes")) for p in RECIPES]
SMOKE = ["train.steps=2", "train.batch_size=8", "train.knn_every=0", "train.checkpoint_every=0",
         "train.max_minutes=null", "train.log_every=1", "train.num_workers=0"]


VARIANTS = [(path, name) for path in RECIPES for name in load_recipe(path).variants]
VARIANT_IDS = [f"{path.relative_to(ROOT / 'recipes')}:{name}" for path, name in VARIANTS]


def downloads_weights(recipe: Recipe) -> bool:
    """A variant that loads public weights from the hub at build time (``hub: true`` / ``weights: hub``)."""
    return any(t.encoder.params.get("hub") is True or t.encoder.params.get("weights") == "hub"
               for t in recipe.towers.values())


def run_variant(path: Path, variant: str) -> float:
    """Build the variant as training would (its full-size model included) and run its objective on a synthetic
    batch of 2. Forward only: paper-scale models (ResNet-50 + 8192-wide expanders, ViT-B multi-crop) at batch 2
    cost seconds each on one CPU thread, a backward about twice that; building plus a forward is what catches a
    wrong key, value or shape, and every objective's backward runs in the base recipes' dry runs."""
    recipe = load_recipe(path, variant=variant)
    if downloads_weights(recipe):  # no network here: the keys are still checked against the builders
        check_components(recipe)
        return float("nan")
    assembled = assemble(recipe, synthetic=4)
    bundle = assembled.bundle
    batch = next(iter(training_loader(bundle.train, bundle, batch_size=2, seed=0, start_batch=0, num_workers=0)))
    with torch.no_grad():
        loss = assembled.objective(assembled.views(batch["x"])).loss
    if not torch.isfinite(loss):
        raise ConfigError(f"{path}: variants.{variant}: loss is {float(loss)} on a synthetic batch")
    return float(loss)


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


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("path", "variant"), VARIANTS, ids=VARIANT_IDS)
def test_variant_builds_and_runs_on_a_synthetic_batch(path: Path, variant: str) -> None:
    loss = run_variant(path, variant)
    assert loss == loss or downloads_weights(load_recipe(path, variant=variant))


def test_a_typo_inside_a_variant_fails(tmp_path: Path) -> None:
    """Parsing alone lets a variant's misspelt builder parameter through (components are open mappings); building
    the variant does not."""
    text = (ROOT / "recipes" / "image" / "simclr_digits.yaml").read_text()
    assert "variants:" not in text
    path = tmp_path / "typo.yaml"
    path.write_text(text + "variants:\n  gpu:\n    objective.hiden_dim: 64\n    train.batch_size: 8\n")
    assert load_recipe(path, variant="gpu").objective.params["hiden_dim"] == 64  # parses
    with pytest.raises(ConfigError, match=r"objective\.hiden_dim: unknown parameter .*did you mean 'hidden_dim'"):
        run_variant(path, "gpu")


def _root_with_shards(recipe: Any, data_root: Path, tmp_path: Path) -> Path:
    """Shard recipes (issue 19) stream what their first comment's ``omnissl shard`` writes: made here from the shared
    MNIST, into ``tmp_path`` (never into the data root), which then serves as their data root."""
    if recipe.data.name == "parquet_shards":  # tabular rows as `omnissl shard adult` writes them, from an Adult slice
        from tests.data.shardkit import table_shards

        table_shards(data_root, tmp_path / "adult_shards", shard_size=250, max_train=2000, max_test=500)
        return tmp_path
    if recipe.data.name != "webdataset":
        return data_root
    from omnissl.cli.main import main

    assert main(["shard", "mnist", "--captions", "a handwritten {}", "--shard-size", "500", "--data-root",
                 str(data_root), "--out", str(tmp_path / "mnist_captions")]) == 0
    return tmp_path


@pytest.mark.parametrize("path", RECIPES, ids=IDS)
def test_recipe_trains_a_few_steps_on_real_data(path: Path, data_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(path, [*SMOKE, "train.accumulate=1"])
    result = Trainer(assemble(recipe, root=_root_with_shards(recipe, data_root, tmp_path)), tmp_path / "run").fit()
    assert result.steps_done == 2
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
