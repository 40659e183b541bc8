"""Build a recipe's pieces — data bundle, encoders, augmentation policies, objective — in one place.

``train``, ``eval`` and ``validate`` all go through :func:`assemble`, so what validates is what trains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from omnissl.augment.policy import ViewPolicy, build_policy
from omnissl.core.instantiate import build_component
from omnissl.core.config import Component, Recipe
from omnissl.data.hints import DATA_ROOT_ENV, with_data_hint
from omnissl.core.errors import ConfigError, DataError
from omnissl.objectives.base import Objective
from omnissl.core.registry import DATASETS, ENCODERS, OBJECTIVES, require_plugins
from omnissl.core.types import DataBundle, Encoder


def data_root(explicit: str | Path | None = None) -> Path:
    """The data-root setting: an explicit path, else ``$OMNISSL_DATA_DIR``, else ``./data``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


@dataclass
class Assembled:
    recipe: Recipe
    bundle: DataBundle
    objective: Objective
    policies: dict[str, ViewPolicy]


def check_plugins(recipe: Recipe) -> None:
    require_plugins(names=recipe.plugins)


def build_data(recipe: Recipe, *, root: str | Path | None = None, synthetic: int | None = None) -> DataBundle:
    """Build the data bundle; ``synthetic=N`` asks the dataset for N fake samples of the right shape (no files)."""
    context: dict[str, Any] = {"data_root": data_root(root), "seed": recipe.seed}
    if synthetic is not None:
        entry = DATASETS.get(recipe.data.name)
        if "synthetic" not in entry.signature.parameters:
            raise ConfigError(f"data.name: dataset '{entry.name}' cannot make synthetic samples for validation")
        context["synthetic"] = synthetic
    try:
        bundle = build_component(DATASETS, recipe.data, "data", context)
    except DataError as error:
        hinted = error if synthetic is not None else with_data_hint(error, dataset=recipe.data.name, explicit_root=root)
        if hinted is error:
            raise
        raise hinted from error
    except ConfigError as error:  # a reader that let a plain FileNotFoundError escape: still a missing file
        cause = error.__cause__
        if synthetic is None and isinstance(cause, FileNotFoundError) and cause.filename:
            plain = DataError(f"{recipe.data.name}: not found: {cause.filename}", missing_path=cause.filename)
            raise with_data_hint(plain, dataset=recipe.data.name, explicit_root=root) from error
        raise
    if not isinstance(bundle, DataBundle):
        raise ConfigError(f"data: dataset '{recipe.data.name}' returned {type(bundle).__name__}, not a DataBundle")
    return bundle


def tower_context(recipe: Recipe, bundle: DataBundle, tower: str) -> dict[str, Any]:
    spec = bundle.input_spec.get(tower, {}) if recipe.is_paired else bundle.input_spec
    return dict(spec)


def build_encoders(recipe: Recipe, bundle: DataBundle) -> dict[str, Encoder]:
    encoders: dict[str, Encoder] = {}
    for name, tower in recipe.tower_specs().items():
        path = "encoder" if not recipe.is_paired else f"towers.{name}.encoder"
        encoder = build_component(ENCODERS, tower.encoder, path, tower_context(recipe, bundle, name))
        if not isinstance(encoder, Encoder):
            raise ConfigError(f"{path}: '{tower.encoder.name}' built a {type(encoder).__name__}, not an Encoder")
        encoders[name] = encoder
    return encoders


def assemble(recipe: Recipe, *, root: str | Path | None = None, synthetic: int | None = None) -> Assembled:
    check_plugins(recipe)
    torch.manual_seed(recipe.seed)
    bundle = build_data(recipe, root=root, synthetic=synthetic)
    encoders = build_encoders(recipe, bundle)
    policies = {}
    for name, tower in recipe.tower_specs().items():
        path = "augment" if not recipe.is_paired else f"towers.{name}.augment"
        policies[name] = build_policy(tower.augment, path=path, context=tower_context(recipe, bundle, name))
    entry = OBJECTIVES.get(recipe.objective.name)
    context: dict[str, Any] = dict(bundle.input_spec) if not recipe.is_paired else {}
    if recipe.is_paired:
        context["encoders"] = encoders
    else:
        context["encoder"] = encoders["main"]
    objective = build_component(OBJECTIVES, recipe.objective, "objective", context)
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective: '{entry.name}' built a {type(objective).__name__}, not an Objective")
    if objective.paired != recipe.is_paired:
        form = "'towers' (two or more modalities)" if objective.paired else "'encoder' + 'augment' (one modality)"
        raise ConfigError(f"objective.name: '{entry.name}' needs a recipe with {form}")
    return Assembled(recipe=recipe, bundle=bundle, objective=objective, policies=policies)


def random_init_encoders(recipe: Recipe, bundle: DataBundle, *, seed: int) -> dict[str, Encoder]:
    """The same architecture, freshly initialised: the random-init baseline.

    An encoder builder with a ``pretrained`` parameter (a public backbone loaded from a local directory) is asked
    for ``pretrained=False``, so the baseline is its architecture with random weights, not the pretrained model.
    """
    towers = {}
    for name, tower in recipe.tower_specs().items():
        if "pretrained" in ENCODERS.get(tower.encoder.name).signature.parameters:
            spec = Component(**{**tower.encoder.model_dump(), "pretrained": False})
            tower = tower.model_copy(update={"encoder": spec})
        towers[name] = tower
    fresh = recipe.model_copy(update={"towers": towers, "encoder": None, "augment": None}) if recipe.is_paired \
        else recipe.model_copy(update={"encoder": towers["main"].encoder})
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build_encoders(fresh, bundle)
    finally:
        torch.random.set_rng_state(state)
