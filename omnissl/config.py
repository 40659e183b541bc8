"""Typed recipes: YAML → validated pydantic models. Unknown keys and wrong types are rejected with their path.

A recipe names registered components (``{name: resnet18, width: 32}``); their parameters are checked against the
builder's signature when the recipe is built (see :mod:`omnissl.build`), so a typo in either place is caught.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from omnissl.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Component(BaseModel):
    """``name`` picks a registered builder; every other key is one of its keyword parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ViewGroup(Strict):
    """``count`` views through ``ops``; ``per_view`` (one list per view) adds view-specific ops after them, for
    asymmetric policies (BYOL's blur 1.0 / 0.1 and solarize 0 / 0.2; GRACE's two drop rates)."""

    count: int = Field(2, ge=1)
    ops: list[Component] = Field(default_factory=list)
    per_view: list[list[Component]] | None = None

    @model_validator(mode="after")
    def _one_list_per_view(self) -> "ViewGroup":
        if self.per_view is not None and len(self.per_view) != self.count:
            raise ValueError(f"per_view has {len(self.per_view)} lists for count={self.count} views")
        return self


class Augment(Strict):
    global_views: ViewGroup = Field(default_factory=ViewGroup, alias="global")
    local_views: ViewGroup | None = Field(None, alias="local")


class Tower(Strict):
    """One modality's encoder and its augmentation policy (a single-modality recipe has one)."""

    encoder: Component
    augment: Augment = Field(default_factory=Augment)


class TrainConfig(Strict):
    steps: int = Field(1000, ge=1)
    max_minutes: float | None = Field(None, gt=0, description="stop early when this wall-clock budget is spent")
    max_cpu_minutes: float | None = Field(
        None, gt=0, description="stop early when this process has used this much CPU time (all its threads summed): "
        "a budget that stays fair when other jobs share the machine")
    batch_size: int = Field(256, ge=1)
    accumulate: int = Field(1, ge=1, description="gradient accumulation steps per optimizer step")
    optimizer: Literal["adamw", "sgd", "lars"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    min_lr: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    weight_decay_end: float | None = Field(None, ge=0, description="cosine weight-decay schedule end value")
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    clip_grad: float | None = Field(None, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    num_workers: int = Field(0, ge=0)
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end (and on SIGTERM/SIGINT)")
    keep_last: int = Field(2, ge=1)
    knn_every: int = Field(0, ge=0, description="0: no k-NN monitor during training")
    knn_samples: int = Field(2000, ge=10)
    monitor_every: int = Field(50, ge=1, description="collapse-monitor period in steps")
    nonfinite: Literal["stop", "skip"] = "stop"
    max_nonfinite_skips: int = Field(10, ge=0)
    stop_on_collapse: bool = False
    compile: bool = False
    channels_last: bool = Field(
        False, description="store 4-D (conv) weights channels-last: the faster layout for convolutions on CPU "
        "(oneDNN) and on GPU tensor cores; a no-op for models without conv layers")


class EvalConfig(Strict):
    knn_k: list[int] = Field(default_factory=lambda: [20, 200])
    knn_temperature: float = Field(0.07, gt=0)
    probe_seeds: int = Field(3, ge=1)
    probe_max_iter: int = Field(200, ge=1)
    probe_weight_decays: list[float] = Field(default_factory=lambda: [0.0, 1e-4, 1e-3, 1e-2])
    val_fraction: float = Field(0.1, gt=0, lt=1)
    baselines: list[Literal["raw", "random_init"]] = Field(default_factory=lambda: ["raw", "random_init"])
    batch_size: int = Field(512, ge=1)
    max_train_samples: int | None = Field(None, ge=1)
    max_test_samples: int | None = Field(None, ge=1)


class Recipe(Strict):
    name: str
    description: str = ""
    seed: int = 0
    plugins: list[str] = Field(default_factory=list, description="modality plugins this recipe needs")
    data: Component
    encoder: Component | None = None
    augment: Augment | None = None
    towers: dict[str, Tower] | None = None
    objective: Component
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named sets of dotted-key overrides, e.g. the paper-scale GPU settings"
    )

    @model_validator(mode="after")
    def _one_tower_form(self) -> "Recipe":
        if self.towers is None and self.encoder is None:
            raise ValueError("give either 'encoder' (one modality) or 'towers' (paired modalities)")
        if self.towers is not None and (self.encoder is not None or self.augment is not None):
            raise ValueError("'towers' replaces top-level 'encoder'/'augment': use one form, not both")
        return self

    def tower_specs(self) -> dict[str, Tower]:
        """Towers keyed by name; a single-modality recipe has one tower called ``main``."""
        if self.towers is not None:
            return dict(self.towers)
        assert self.encoder is not None
        return {"main": Tower(encoder=self.encoder, augment=self.augment or Augment())}

    @property
    def is_paired(self) -> bool:
        return self.towers is not None


def _format_errors(error: ValidationError, model: type[BaseModel], source: str) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(model, item["loc"])
        lines.append(f"{source}: {path}: {message}")
    return "\n".join(lines)


def _suggestion(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(str(part))
        if field is None:
            field = next((f for f in getattr(current, "model_fields", {}).values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        current = next((a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")), None)
        if current is None:
            return ""
    fields = getattr(current, "model_fields", {})
    names = [f.alias or n for n, f in fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=0.1`` → (['train', 'lr'], 0.1); the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override '{text}': value is not valid YAML ({error})") from error
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = _list_item(node, part, path[: depth + 1])
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{'.'.join(path[:depth])}' is not a mapping")
            node = node.setdefault(part, {})
        if isinstance(node, list):
            node[_list_index(node, path[-1], path)] = value
        elif isinstance(node, dict):
            node[path[-1]] = value
        else:
            raise ConfigError(f"override '{text}': '{'.'.join(path[:-1])}' is not a mapping")
    return result


def _list_index(node: list[Any], part: str, path: list[str]) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"override key '{'.'.join(path)}': '{part}' is not an index of a list of {len(node)}")
    return int(part)


def _list_item(node: list[Any], part: str, path: list[str]) -> Any:
    return node[_list_index(node, part, path)]


def recipe_from_dict(raw: Any, *, source: str = "recipe", overrides: list[str] | None = None,
                     variant: str | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    if variant is not None:
        variants = raw.get("variants") or {}
        if variant not in variants:
            raise ConfigError(f"{source}: variants.{variant}: no such variant (have: {', '.join(variants) or 'none'})")
        raw = apply_overrides(raw, [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}"
                                    for k, v in variants[variant].items()])
    raw = apply_overrides(raw, overrides or [])
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, Recipe, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None, variant: str | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    return recipe_from_dict(raw, source=str(path), overrides=overrides, variant=variant)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False)
