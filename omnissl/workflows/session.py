"""What the CLI verbs do, as plain functions: validate a recipe, train it, evaluate a run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from omnissl.train.assemble import Assembled, assemble
from omnissl.core.instantiate import check_components
from omnissl.core.config import Recipe, load_recipe, recipe_differences, variant_recipes
from omnissl.data.tensors import training_loader
from omnissl.core.errors import ConfigError
from omnissl.eval.engine import build_protocols
from omnissl.train import checkpoint as ckpt
from omnissl.train.distributed import autocast_dtype, resolve_device
from omnissl.train.estimate import CostEstimate, estimate_cost
from omnissl.workflows.evaluation import read_out
from omnissl.core.types import to_device


def first_batch(assembled: Assembled, *, batch_size: int = 8) -> Any:
    """The first training batch's inputs (at most ``batch_size`` samples), on the CPU."""
    bundle = assembled.bundle
    loader = training_loader(bundle.train, bundle, batch_size=min(batch_size, len(bundle.train)),  # type: ignore[arg-type]
                             seed=0, start_batch=0, num_workers=0)
    return to_device(next(iter(loader))["x"], "cpu")


def dry_run(assembled: Assembled, *, batch_size: int = 8) -> float:
    """One forward + backward on a small batch; returns the loss. Used by ``validate`` and the tests."""
    views = assembled.views(first_batch(assembled, batch_size=batch_size))
    output = assembled.objective(views)
    if not torch.isfinite(output.loss):
        raise ConfigError(f"objective: loss is {output.loss.item()} on a synthetic batch")
    output.loss.backward()
    return float(output.loss.detach())


@torch.no_grad()
def check_readout_block(assembled: Assembled) -> None:
    """``eval.readout_block`` fails at ``validate``, not after training: on an encoder without transformer blocks,
    or past the encoder's depth (one forward of the block readout on a synthetic batch counts its blocks)."""
    block = assembled.recipe.eval.readout_block
    if block is None:
        return
    x = first_batch(assembled, batch_size=2)
    for tower, encoder in assembled.encoders.items():
        readout = read_out(encoder, block, tower=tower)
        was_training = encoder.training
        encoder.eval()
        try:
            readout(assembled.selector(tower)(x))
        except ValueError as error:
            raise ConfigError(f"eval.readout_block: tower '{tower}': {error}") from error
        finally:
            encoder.train(was_training)


def validate(path: str | Path, overrides: list[str] | None = None, variant: str | None = None) -> Recipe:
    """Build the recipe (or the chosen variant) and run one step; every other variant is checked without building,
    so a typo in a variant nobody uses today fails now, not on the GPU box later."""
    return check(path, overrides, variant, estimate=False)[0]


def check(path: str | Path, overrides: list[str] | None = None, variant: str | None = None, *,
          estimate: bool = True) -> tuple[Recipe, CostEstimate | None]:
    """:func:`validate`, plus (``estimate``) the cost line ``omnissl validate`` prints: parameters and one timed
    synthetic step at the recipe's batch size on its device, so a paper-scale default shows before a run."""
    recipe = load_recipe(path, overrides, variant)
    assembled = assemble(recipe, synthetic=16)
    dry_run(assembled)
    build_protocols(recipe.eval, assembled.bundle)  # helper C (issue 18): eval.protocols built and validated
    check_readout_block(assembled)
    for name, changed in variant_recipes(path, overrides).items():
        if name == variant:
            continue
        try:
            check_components(changed)
        except ConfigError as error:  # component errors start with their key path, which the variant wrote
            raise ConfigError(f"{path}: variants.{name}.{error}") from None
    return recipe, synthetic_estimate(assembled) if estimate else None


def synthetic_estimate(assembled: Assembled) -> CostEstimate:
    """The cost of ``assembled`` (built on synthetic data, not trained afterwards) on the recipe's device; a device
    this machine lacks is timed on the CPU and the line says so."""
    from omnissl.train.runner import place_for_training

    config = assembled.recipe.train
    device = resolve_device(config.device)
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    label = None
    if not available.get(device.type, True):
        label, device = f"cpu ({config.device} is not available here)", torch.device("cpu")
    objective = place_for_training(assembled.objective, config, device)
    found = estimate_cost(objective=objective, views_of=assembled.views, bundle=assembled.bundle,
                          batch_size=config.batch_size, accumulate=config.accumulate, device=device,
                          steps_left=config.steps,
                          dtype=autocast_dtype(config.precision, device))
    return found if label is None else dataclasses.replace(found, device=label)


def training_estimate(trainer: Any) -> CostEstimate:
    """The cost of the run ``trainer`` is about to make, timed on a copy so the run itself is unchanged."""
    config = trainer.config
    return estimate_cost(objective=trainer.objective, views_of=trainer.assembled.views,
                         bundle=trainer.assembled.bundle, batch_size=config.batch_size, accumulate=config.accumulate,
                         device=trainer.device, steps_left=config.steps - trainer.step,
                         dtype=trainer.amp_dtype, work_on_copy=True)


def default_run_dir(recipe: Recipe) -> Path:
    return Path("runs") / f"{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"


RESUME_MAY_CHANGE = ("steps", "max_minutes", "max_cpu_minutes", "checkpoint_minutes")  # budgets and save timing:
# nothing that shapes a step


def check_resume_matches(recipe: Recipe, run_dir: Path) -> None:
    """Resuming with a different recipe would silently change the run; only the step and time budgets may differ."""
    saved_path = run_dir / "recipe.yaml"
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {saved_path} not found; is {run_dir} an omnissl run directory?")
    saved = load_recipe(saved_path).model_dump(by_alias=True)
    given = recipe.model_dump(by_alias=True)
    for section in (saved, given):
        for key in RESUME_MAY_CHANGE:
            section["train"].pop(key)
    changed = recipe_differences(saved, given)
    if changed:
        allowed = ", ".join(f"train.{key}" for key in RESUME_MAY_CHANGE)
        raise ConfigError(f"--resume: the recipe differs from {saved_path} in: {', '.join(changed)} "
                          f"(only {allowed} may change when resuming)")


def load_trained(run_dir: Path, *, checkpoint: Path | None = None, root: str | Path | None = None,
                 overrides: list[str] | None = None) -> Assembled:
    """Rebuild a run's recipe and load its latest (or the given) checkpoint's weights.

    The encoders are built from the ``input_spec`` the run recorded in ``resolved.yaml``, so the model is the one
    that trained even if the dataset now publishes something else; each difference is reported (a WARNING and
    ``assembled.notes``). A run made before ``resolved.yaml`` existed is rebuilt from the dataset's current spec,
    with a note saying so."""
    from omnissl.train.resolved import FILE_NAME, log, read_resolved, spec_changes

    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise ConfigError(f"{run_dir} has no recipe.yaml: not an omnissl run directory")
    recorded = read_resolved(run_dir)
    assembled = assemble(load_recipe(recipe_path, overrides), root=root,
                         recorded_spec=None if recorded is None else recorded["input_spec"])
    if recorded is None:
        assembled.notes.append(f"{run_dir}: no {FILE_NAME} (a run from before it was recorded): the encoder is "
                               f"rebuilt from the dataset's current input_spec")
    else:
        assembled.notes += [f"{run_dir / FILE_NAME}: {line}; the encoder is rebuilt as trained"
                            for line in spec_changes(recorded["input_spec"], assembled.bundle.input_spec)]
    for note in assembled.notes:
        log.warning(note)
    path = checkpoint or ckpt.latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        raise ConfigError(f"{run_dir / 'checkpoints'} has no checkpoint to evaluate")
    assembled.objective.load_state_dict(ckpt.load_checkpoint(path)["model"])
    return assembled


def evaluate_assembled(assembled: Assembled, *, trained: bool, device: str = "auto",
                       run_root: Path | None = None) -> dict[str, Any]:
    """The recipe's evaluation protocols on each tower beside its baselines (:mod:`omnissl.workflows.evaluation`,
    which runs the one engine); ``run_root`` caches the baseline rows under ``<run_root>/.cache/baselines``."""
    from omnissl.workflows.evaluation import evaluate_assembled as evaluate

    return evaluate(assembled, trained=trained, device=device, run_root=run_root)
