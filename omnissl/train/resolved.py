"""Self-describing runs: ``RUN_DIR/resolved.yaml`` records what every builder was actually called with.

Written once when a run starts (atomically). Each component — ``data``, each tower's ``encoder`` and augmentation
ops, ``objective`` — is listed under the recipe key it was built from, with every keyword argument, its value and
where it came from: ``recipe`` (written there), ``input_spec`` (published by the dataset: ``in_channels``,
``vocab_size`` …), ``context`` (data root, seed, the encoder an objective wraps) or ``default`` (the builder's).
The dataset's whole ``input_spec`` is kept too, so ``eval``, ``embed`` and ``export`` rebuild the encoder the run
trained — ``export`` without building the dataset at all — and a dataset that now publishes a different spec is
reported key by key instead of silently giving a different encoder.

Layout::

    format: omnissl-resolved/1
    recipe: <recipe name>
    input_spec: {in_channels: 3, ...}          # {tower: {...}} with several towers
    components:
      encoder:                                 # or towers.<tower>.encoder
        kind: encoder
        name: resnet10
        params: {width: {value: 16, source: recipe}, in_channels: {value: 3, source: input_spec}, ...}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from omnissl.core.config import Recipe, load_recipe
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import SOURCES, ResolvedCall, plain_value
from omnissl.core.safe_yaml import read_yaml_file

FILE_NAME = "resolved.yaml"
FORMAT = "omnissl-resolved/1"
log = logging.getLogger("omnissl.runs")


def resolved_document(recipe: Recipe, input_spec: dict[str, Any], calls: Iterable[ResolvedCall]) -> dict[str, Any]:
    """The ``resolved.yaml`` content for a run built from ``recipe`` (see the module docstring)."""
    spec, _ = plain_value(input_spec)
    return {"format": FORMAT, "recipe": recipe.name, "input_spec": spec,
            "components": {call.path: {"kind": call.kind, "name": call.name, "params": call.params} for call in calls}}


def write_resolved(run_dir: Path, document: dict[str, Any]) -> Path:
    from omnissl.train.logging import atomic_write_text

    path = Path(run_dir) / FILE_NAME
    atomic_write_text(path, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


def read_resolved(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``resolved.yaml`` checked field by field, or None for a run made before it was written."""
    path = Path(run_dir) / FILE_NAME
    if not path.is_file():
        return None
    document = read_yaml_file(path, what="resolved arguments")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{path}: format {found!r}, expected {FORMAT!r}")
    for key in ("input_spec", "components"):
        if not isinstance(document.get(key), dict):
            raise ConfigError(f"{path}: '{key}' must be a mapping, got {document.get(key)!r:.80}")
    for where, component in document["components"].items():
        params = component.get("params") if isinstance(component, dict) else None
        if not isinstance(params, dict) or not isinstance(component.get("name"), str):
            raise ConfigError(f"{path}: components.{where}: expected 'name' and a 'params' mapping")
        for name, entry in params.items():
            if not isinstance(entry, dict) or "value" not in entry or entry.get("source") not in SOURCES:
                raise ConfigError(f"{path}: components.{where}.params.{name}: expected value and a source "
                                  f"({', '.join(SOURCES)}), got {entry!r:.80}")
    return document


def spec_changes(recorded: Any, current: Any, *, prefix: str = "input_spec") -> list[str]:
    """One line per ``input_spec`` key whose value differs between the run's record and the dataset now."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        lines = []
        for key in sorted(set(recorded) | set(current), key=str):
            where = f"{prefix}.{key}"
            if key not in current:
                lines.append(f"{where}: {recorded[key]!r} when trained, not published by the dataset now")
            elif key not in recorded:
                lines.append(f"{where}: not published when trained, {plain_value(current[key])[0]!r} now")
            else:
                lines += spec_changes(recorded[key], current[key], prefix=where)
        return lines
    now, _ = plain_value(current)
    return [] if now == recorded else [f"{prefix}: {recorded!r} when trained, {now!r} now"]


def encoder_params(document: dict[str, Any] | None, path: str) -> dict[str, dict[str, Any]] | None:
    """The recorded parameters of the component built at ``path`` (``encoder``, ``towers.<t>.encoder``)."""
    if document is None:
        return None
    component = document["components"].get(path)
    return None if component is None else dict(component["params"])


def explain_rows(calls: Iterable[ResolvedCall]) -> list[tuple[str, str, str, str]]:
    """``(component path, parameter, value, source)`` for every argument of every builder call."""
    rows = []
    for call in calls:
        for name, entry in call.params.items():
            value = yaml.safe_dump(entry["value"], default_flow_style=True, width=10**6).strip()
            value = value.removesuffix("\n...").removesuffix("...").strip()
            rows.append((f"{call.path} ({call.name})", name, value if len(value) <= 60 else value[:57] + "...",
                         entry["source"]))
    return rows


def explain_table(calls: Iterable[ResolvedCall]) -> str:
    """The ``omnissl validate --explain`` table: one aligned row per builder argument."""
    rows = [("component", "parameter", "value", "source"), *explain_rows(calls)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows)


@dataclass
class Rebuilt:
    """A trained run's model rebuilt from ``recipe.yaml`` + ``resolved.yaml`` + a checkpoint, without its data."""

    recipe: Recipe
    objective: Any
    document: dict[str, Any]
    checkpoint: Path
    step: int


def rebuild_trained(run_dir: Path, *, checkpoint: Path | None = None) -> Rebuilt | None:
    """The run's objective with the checkpoint's weights, built from the recorded ``input_spec`` (no dataset);
    None when the run has no ``resolved.yaml`` (made before it was recorded)."""
    from omnissl.train import checkpoint as ckpt
    from omnissl.train.assemble import build_encoders, build_objective, check_plugins

    run_dir = Path(run_dir)
    document = read_resolved(run_dir)
    if document is None:
        return None
    recipe = load_recipe(run_dir / "recipe.yaml")
    path = checkpoint or ckpt.latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        raise ConfigError(f"{run_dir / 'checkpoints'} has no checkpoint")
    check_plugins(recipe)
    spec = document["input_spec"]
    objective = build_objective(recipe, build_encoders(recipe, input_spec=spec), input_spec=spec)
    payload = ckpt.load_checkpoint(Path(path))
    objective.load_state_dict(payload["model"])
    return Rebuilt(recipe=recipe, objective=objective, document=document, checkpoint=Path(path),
                   step=int(payload["step"]))


def explain_recipe(path: str | Path, overrides: list[str] | None = None, variant: str | None = None) -> str:
    """``omnissl validate --explain``: the recipe built on synthetic data, as the table of every builder argument
    (component path, parameter, value, source) — what training would call the builders with."""
    from omnissl.train.assemble import assemble

    return explain_table(assemble(load_recipe(path, overrides, variant), synthetic=16).resolved)
