"""Build a recipe's pieces — data bundle, encoders, augmentation policies, objective — in one place.

``train``, ``eval`` and ``validate`` all go through :func:`assemble`, so what validates is what trains.

One tower model
---------------
Every recipe has ``recipe.towers`` (a single-modality recipe is the one tower ``main``), and :class:`Assembled`
answers every per-tower question, so no caller branches on single vs paired:

- ``assembled.tower_names`` — the towers in recipe order (``["main"]``, ``["image", "audio"]``, …);
- ``assembled.encoders`` — ``{tower: Encoder}`` that evaluation reads (the objective's ``towers``: backbones,
  an EMA teacher where the paper evaluates it);
- ``assembled.policies`` — ``{tower: ViewPolicy}``;
- ``assembled.tower_input(x, tower)`` — that tower's part of a collated batch input ``x = batch["x"]`` (with one
  tower ``x`` itself, with several ``x[tower]``); ``assembled.selector(tower)`` is the same as a one-argument
  callable, for ``select=`` arguments (feature extraction, k-NN, probes);
- ``assembled.views(x)`` — the objective's input, ``{tower: ViewSet}`` for every recipe (a single-tower
  objective's ``forward(views: ViewSet)`` gets its one ViewSet: :class:`omnissl.objectives.base.Objective`
  unwraps it);
- ``assembled.batch_size(x)`` — samples in ``x``;
- ``assembled.input_spec(tower)`` — what the dataset published for that tower (``in_channels``, ``vocab_size``);
- ``assembled.recipe.tower_key(tower, "encoder")`` — where a tower's piece is written (``encoder`` or
  ``towers.<tower>.encoder``), for error messages;
- ``assembled.resolved`` — every builder call with its resolved keyword arguments and their sources
  (:class:`omnissl.core.instantiate.ResolvedCall`; written to ``RUN_DIR/resolved.yaml``).
- ``assembled.notes`` — what a rebuild of a trained run found (``session.load_trained``): each ``input_spec`` key
  that changed since training, or that the run predates ``resolved.yaml``.

Nothing limits a recipe to two towers: a multi-tower objective (``PairedObjective``) gets ``encoders`` for all.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from omnissl.augment.policy import ViewPolicy, build_policy
from omnissl.core.config import Component, Recipe
from omnissl.core.errors import ConfigError, DataError
from omnissl.core.instantiate import BuildContext, ResolvedCall, build_component, recording
from omnissl.core.registry import DATASETS, ENCODERS, OBJECTIVES, require_plugins
from omnissl.core.types import DataBundle, Encoder, ViewSet, batch_size_of
from omnissl.data.hints import DATA_ROOT_ENV, with_data_hint
from omnissl.objectives.base import Objective


def data_root(explicit: str | Path | None = None) -> Path:
    """The data-root setting: an explicit path, else ``$OMNISSL_DATA_DIR``, else ``./data``."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def tower_input(recipe: Recipe, x: Any, tower: str) -> Any:
    """``tower``'s part of a collated batch input: batches of a recipe with several towers are ``{tower: input}``
    (the ``paired`` dataset), a one-tower recipe's batch is the input itself."""
    if tower not in recipe.towers:
        raise ConfigError(f"tower '{tower}': the recipe has towers {', '.join(recipe.towers)}")
    return x[tower] if len(recipe.towers) > 1 else x


@dataclass
class Assembled:
    recipe: Recipe
    bundle: DataBundle
    objective: Objective
    policies: dict[str, ViewPolicy]
    resolved: list[ResolvedCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. an input_spec that changed since the run trained

    @property
    def tower_names(self) -> list[str]:
        return list(self.recipe.towers)

    @property
    def encoders(self) -> dict[str, Encoder]:
        return dict(self.objective.towers)

    def tower_input(self, x: Any, tower: str) -> Any:
        return tower_input(self.recipe, x, tower)

    def selector(self, tower: str) -> Callable[[Any], Any]:
        return functools.partial(tower_input, self.recipe, tower=tower)

    def views(self, x: Any) -> dict[str, ViewSet]:
        return {name: policy(self.tower_input(x, name)) for name, policy in self.policies.items()}

    def batch_size(self, x: Any) -> int:
        return batch_size_of(self.tower_input(x, self.tower_names[0]))

    def input_spec(self, tower: str) -> dict[str, Any]:
        return tower_spec(self.recipe, self.bundle.input_spec, tower)


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
        bundle = build_component(DATASETS, recipe.data, "data", BuildContext(context=context))
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


def tower_spec(recipe: Recipe, input_spec: Mapping[str, Any], tower: str) -> dict[str, Any]:
    """One tower's share of a bundle's ``input_spec`` (keyed by tower when the recipe has several)."""
    spec = input_spec.get(tower, {}) if len(recipe.towers) > 1 else input_spec
    return dict(spec)


def tower_context(recipe: Recipe, bundle: DataBundle, tower: str) -> dict[str, Any]:
    return tower_spec(recipe, bundle.input_spec, tower)


def build_encoders(recipe: Recipe, bundle: DataBundle | None = None, *,
                   input_spec: Mapping[str, Any] | None = None) -> dict[str, Encoder]:
    """Each tower's encoder, its missing parameters filled from ``input_spec`` (default: the bundle's)."""
    spec = input_spec if input_spec is not None else (bundle.input_spec if bundle is not None else {})
    encoders: dict[str, Encoder] = {}
    for name, tower in recipe.towers.items():
        path = recipe.tower_key(name, "encoder")
        context = BuildContext(input_spec=tower_spec(recipe, spec, name))
        encoder = build_component(ENCODERS, tower.encoder, path, context)
        if not isinstance(encoder, Encoder):
            raise ConfigError(f"{path}: '{tower.encoder.name}' built a {type(encoder).__name__}, not an Encoder")
        encoders[name] = encoder
    return encoders


def build_objective(recipe: Recipe, encoders: dict[str, Encoder], *,
                    input_spec: Mapping[str, Any]) -> Objective:
    """The objective around ``encoders``: a single-tower objective gets ``encoder`` (and the dataset's
    ``input_spec``), a multi-tower one ``encoders``; the recipe's tower count must fit the objective."""
    entry = OBJECTIVES.get(recipe.objective.name)
    several = len(encoders) > 1
    extra = {"encoders": encoders} if several else {"encoder": next(iter(encoders.values()))}
    context = BuildContext(input_spec={} if several else input_spec, context=extra)
    objective = build_component(OBJECTIVES, recipe.objective, "objective", context)
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective: '{entry.name}' built a {type(objective).__name__}, not an Objective")
    if objective.paired != several:
        form = "'towers' (two or more modalities)" if objective.paired else "'encoder' + 'augment' (one modality)"
        raise ConfigError(f"objective.name: '{entry.name}' needs a recipe with {form}")
    if not several:
        objective.tower_name = next(iter(encoders))
    return objective


def assemble(recipe: Recipe, *, root: str | Path | None = None, synthetic: int | None = None,
             recorded_spec: Mapping[str, Any] | None = None) -> Assembled:
    """Build everything. ``recorded_spec``: the ``input_spec`` a run was trained with (``resolved.yaml``), used
    for the model instead of the one this dataset publishes now, so a trained run is rebuilt exactly."""
    check_plugins(recipe)
    torch.manual_seed(recipe.seed)
    with recording() as calls:
        bundle = build_data(recipe, root=root, synthetic=synthetic)
        spec = bundle.input_spec if recorded_spec is None else recorded_spec
        encoders = build_encoders(recipe, input_spec=spec)
        policies = {}
        for name, tower in recipe.towers.items():
            context = BuildContext(input_spec=tower_spec(recipe, bundle.input_spec, name))
            policies[name] = build_policy(tower.augment, path=recipe.tower_key(name, "augment"), context=context)
        objective = build_objective(recipe, encoders, input_spec=spec)
    return Assembled(recipe=recipe, bundle=bundle, objective=objective, policies=policies, resolved=calls)


def random_init_encoders(recipe: Recipe, bundle: DataBundle, *, seed: int) -> dict[str, Encoder]:
    """The same architecture, freshly initialised: the random-init baseline.

    An encoder builder with a ``pretrained`` parameter (a public backbone loaded from a local directory) is asked
    for ``pretrained=False``, so the baseline is its architecture with random weights, not the pretrained model.
    """
    towers = {}
    for name, tower in recipe.towers.items():
        if "pretrained" in ENCODERS.get(tower.encoder.name).signature.parameters:
            spec = Component(**{**tower.encoder.model_dump(), "pretrained": False})
            tower = tower.model_copy(update={"encoder": spec})
        towers[name] = tower
    fresh = recipe.model_copy(update={"towers": towers})
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build_encoders(fresh, bundle)
    finally:
        torch.random.set_rng_state(state)
