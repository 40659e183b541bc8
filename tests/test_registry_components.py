"""Every registered component, tested with no per-component code (like timm's model tests).

Datasets build synthetic samples without files; encoders build from their defaults plus a same-modality
dataset's ``input_spec`` and give pooled ``(B, D)``; augmentations keep the batch; every objective is used by a
shipped recipe (which tests/test_recipes.py runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from omnissl.core.instantiate import build_component
from omnissl.core.config import Component
from omnissl.data.tensors import training_loader
from omnissl.core.errors import ConfigError
from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS, OBJECTIVES, Entry
from omnissl.core.types import DataBundle, Encoder, batch_size_of

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").rglob("*.yaml"))


_INJECTED = {"synthetic", "seed", "data_root"}


def _example_params(entry: Entry) -> dict[str, Any]:
    """``example_params``, plus a placeholder for each required string parameter (a path, in synthetic mode
    never opened)."""
    params = dict(entry.example_params or {})
    for p in entry.signature.parameters.values():
        if p.default is p.empty and p.name not in _INJECTED and p.name not in params and str(p.annotation) in ("str", "<class 'str'>"):
            params[p.name] = "placeholder"
    return params


def _synthetic(entry: Entry) -> DataBundle:
    params = _example_params(entry)
    try:
        return build_component(DATASETS, Component(name=entry.name, **params), "data",
                               {"synthetic": 16, "seed": 0, "data_root": Path("/nonexistent")})
    except ConfigError as error:
        pytest.fail(f"{error} — give it a default or declare example_params= in DATASETS.register(...)")


def _dataset_for(modality: str) -> Entry:
    """The first dataset of ``modality`` that builds from its defaults (+ example_params)."""
    for entry in DATASETS.entries():
        if entry.modality != modality:
            continue
        missing = [p for p in entry.signature.parameters.values()
                   if p.default is p.empty and p.name not in _INJECTED and p.name not in _example_params(entry)]
        if not missing:
            return entry
    pytest.fail(f"no dataset of modality '{modality}' builds from defaults to test its components with")


def _batch(bundle: DataBundle, size: int = 8) -> dict[str, Any]:
    loader = training_loader(bundle.train, bundle, batch_size=min(size, len(bundle.train)), seed=0, start_batch=0,
                             num_workers=0)
    return next(iter(loader))


def _build(registry: Any, entry: Entry, bundle: DataBundle) -> Any:
    spec = Component(name=entry.name, **(entry.example_params or {}))
    return build_component(registry, spec, entry.kind, dict(bundle.input_spec))


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_builds_synthetic_samples_without_files(name: str) -> None:
    bundle = _synthetic(DATASETS.get(name))
    assert isinstance(bundle, DataBundle)
    batch = _batch(bundle)
    assert {"x", "y", "index"} <= set(batch)
    if bundle.raw_features is not None:
        raw = bundle.raw_features(batch["x"])
        assert raw.ndim == 2 and raw.shape[0] == len(batch["y"])


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_builds_from_defaults_and_gives_pooled_rows(name: str) -> None:
    entry = ENCODERS.get(name)
    bundle = _synthetic(_dataset_for(entry.modality))
    torch.manual_seed(0)
    encoder = _build(ENCODERS, entry, bundle)
    assert isinstance(encoder, Encoder) and encoder.embed_dim > 0
    batch = _batch(bundle, size=4)
    encoder.eval()
    with torch.no_grad():
        out = encoder(batch["x"])
    assert out.pooled.shape == (len(batch["y"]), encoder.embed_dim)
    assert torch.isfinite(out.pooled).all()
    if "tokens" in encoder.output_kinds:
        assert out.tokens is not None and out.tokens.ndim == 3 and out.tokens.shape[-1] == encoder.embed_dim


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_augmentation_keeps_the_batch(name: str) -> None:
    entry = AUGMENTATIONS.get(name)
    bundle = _synthetic(_dataset_for(entry.modality))
    op = _build(AUGMENTATIONS, entry, bundle)
    batch = _batch(bundle)
    torch.manual_seed(0)
    out = op(batch["x"])
    assert type(out) is type(batch["x"])
    assert batch_size_of(out) == batch_size_of(batch["x"])


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_objective_is_used_by_a_shipped_recipe(name: str) -> None:
    used = {yaml.safe_load(p.read_text())["objective"]["name"] for p in RECIPES}
    assert name in used, f"objective '{name}' has no recipe in recipes/: add one so it is run end to end"


# ---------------------------------------------------------------- evaluations (issue 18, helper C)
from omnissl.core.registry import EVALUATIONS  # noqa: E402

FAST = {"finetune": {"min_steps": 2, "epochs": 0.05, "batch_size": 8}}  # a smoke run, not a measurement


def _recipe_for_evaluation(entry: Entry) -> Path:
    """A shipped recipe that lists the protocol, else one of its modality, else the image demo recipe."""
    listed = [p for p in RECIPES if any(c.get("name") == entry.name for c in
                                        ((yaml.safe_load(p.read_text()).get("eval") or {}).get("protocols") or []))]
    if listed:
        return listed[0]
    same = [p for p in RECIPES if p.parent.name == entry.modality]
    return same[0] if same else Path(__file__).resolve().parents[1] / "recipes" / "image" / "simclr_digits.yaml"


@pytest.mark.parametrize("name", EVALUATIONS.names())
def test_evaluation_runs_through_the_engine_on_synthetic_data(name: str) -> None:
    """Every registered protocol builds from its defaults and gives finite scores in [0, 1] for the rows it
    applies to, through the same engine ``omnissl eval`` uses."""
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.workflows.evaluation import evaluate_assembled

    entry = EVALUATIONS.get(name)
    path = _recipe_for_evaluation(entry)
    params = ", ".join(f"{k}: {v}" for k, v in {**(entry.example_params or {}), **FAST.get(name, {})}.items())
    recipe = load_recipe(path, [f"eval.protocols=[{{name: {name}{', ' + params if params else ''}}}]",
                                "eval.probe_seeds=1", "eval.probe_max_iter=20"])
    assembled = assemble(recipe, synthetic=40)
    tables = evaluate_assembled(assembled, trained=False, device="cpu")
    cells = [row["cells"][column] for table in tables.values() for row in table.rows for column in row["cells"]
             if column == name or column == getattr(table, "protocols", [None])[-1] and row["kind"] == "baseline"]
    assert cells, f"evaluation '{name}' measured nothing on {path.name}: {[t.table() for t in tables.values()]}"
    for found in cells:
        for heading, value in found["columns"].items():
            assert 0.0 <= value["mean"] <= 1.0, f"{name}: {heading} = {value['mean']}"
