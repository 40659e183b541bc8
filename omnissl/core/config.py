"""Typed recipes: YAML → validated pydantic models. Unknown keys and wrong types are rejected with their path.

A recipe names registered components (``{name: resnet18, width: 32}``); their parameters are checked against the
builder's signature when the recipe is built (see :mod:`omnissl.core.instantiate`), so a typo in either place is caught.
Files and override values are read by :mod:`omnissl.core.safe_yaml` (no aliases, no duplicate keys, no YAML 1.1
octal), and integers are strict: ``steps: true`` is not one step.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StrictInt, ValidationError,
                      field_validator, model_validator)

from omnissl.core.errors import ConfigError
from omnissl.core.overrides import apply_overrides, parse_override, set_dotted
from omnissl.core.safe_yaml import load_yaml_text, read_yaml_file

__all__ = ["Recipe", "Component", "Tower", "load_recipe", "recipe_from_dict", "dump_recipe", "recipe_dict",
           "recipe_differences", "variant_recipes", "load_yaml_text", "read_yaml_file", "apply_overrides", "parse_override"]


def _no_bool(value: Any) -> Any:
    """pydantic's lax float turns ``true`` into 1.0; a recipe that writes a bool where a number goes is a typo."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a bool")
    return value


Float = Annotated[float, BeforeValidator(_no_bool)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
# What omnissl.train.distributed.resolve_device hands to torch.device: anything else fails only once training starts.
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# Builder parameters the core fills in itself; in a recipe they would override the user's choices silently (F15).
CONTEXT_ONLY = {
    "data_root": "the data root comes from --data-root or $OMNISSL_DATA_DIR, never from a recipe",
    "seed": "the dataset gets the recipe's top-level 'seed'",
    "synthetic": "fake samples are made by `omnissl validate` only, never for training or evaluation",
}


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

    count: StrictInt = Field(2, ge=1)
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
    steps: StrictInt = Field(1000, ge=1)
    max_minutes: Float | None = Field(None, gt=0, description="stop early when this wall-clock budget is spent")
    max_cpu_minutes: Float | None = Field(
        None, gt=0, description="stop early when this process has used this much CPU time (all its threads summed): "
        "a budget that stays fair when other jobs share the machine")
    batch_size: StrictInt = Field(256, ge=1)
    accumulate: StrictInt = Field(1, ge=1, description="gradient accumulation steps per optimizer step")
    optimizer: Literal["adamw", "adam", "sgd", "lars"] = Field(
        "adamw", description="adamw: decoupled weight decay; adam: weight decay as an L2 term in the gradient "
        "(torch.optim.Adam, what DGI/GRACE/GraphMAE/InfoGraph's code uses: the same number regularises far more)")
    lr: Float = Field(1e-3, gt=0)
    min_lr: Float = Field(0.0, ge=0)
    momentum: Float = Field(0.9, ge=0, lt=1)
    weight_decay: Float = Field(1e-4, ge=0)
    weight_decay_end: Float | None = Field(None, ge=0, description="cosine weight-decay schedule end value")
    warmup_steps: StrictInt = Field(0, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    clip_grad: Float | None = Field(None, gt=0)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    num_workers: StrictInt = Field(0, ge=0)
    log_every: StrictInt = Field(10, ge=1)
    checkpoint_every: StrictInt = Field(0, ge=0, description="0: only at the end (and on SIGTERM/SIGINT)")
    checkpoint_minutes: Float | None = Field(
        10.0, gt=0, description="also checkpoint when this much wall-clock time has passed since the last checkpoint, "
        "so a long run killed late loses at most this much; null: only checkpoint_every and the end")
    keep_last: StrictInt = Field(2, ge=1)
    knn_every: StrictInt = Field(0, ge=0, description="0: no k-NN monitor during training")
    knn_samples: StrictInt = Field(2000, ge=10)
    monitor_every: StrictInt = Field(50, ge=1, description="collapse-monitor period in steps")
    nonfinite: Literal["stop", "skip"] = "stop"
    max_nonfinite_skips: StrictInt = Field(10, ge=0)
    stop_on_collapse: bool = False
    compile: bool = Field(False, description="torch.compile the objective's forward in place (keys unchanged)")
    compile_backend: Literal["inductor", "aot_eager", "eager"] = Field(
        "inductor", description="inductor (needs a C compiler on CPU); aot_eager: traces, generates no code")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: every rank holds all weights; fsdp: FSDP2 shards each transformer block and the "
        "rest over ranks (ViT-scale encoders), checkpoints still hold full weights; one process: the plain model")
    sync_batchnorm: bool | None = Field(
        None, description="with several processes, BatchNorm normalises over the global batch (what the papers' "
        "batch sizes mean); null: on when the model has BatchNorm; one process has nothing to sync")
    activation_checkpointing: bool = Field(
        False, description="recompute each transformer trunk block in backward instead of storing activations: "
        "less memory, about one extra forward, same loss and gradients")
    channels_last: bool = Field(
        False, description="store 4-D (conv) weights channels-last: the faster layout for convolutions on CPU "
        "(oneDNN) and on GPU tensor cores; a no-op for models without conv layers")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"'{value}' is not a device; use auto, cpu, cuda, cuda:N or mps")
        return value


class EvalConfig(Strict):
    knn_k: list[PositiveInt] = Field(default_factory=lambda: [20, 200])
    knn_temperature: Float = Field(0.07, gt=0)
    probe_seeds: StrictInt = Field(3, ge=1)
    probe_max_iter: StrictInt = Field(200, ge=1)
    probe_weight_decays: list[Annotated[Float, Field(ge=0)]] = Field(default_factory=lambda: [0.0, 1e-4, 1e-3, 1e-2])
    val_fraction: Float = Field(0.1, gt=0, lt=1)
    baselines: list[Literal["raw", "random_init"]] = Field(default_factory=lambda: ["raw", "random_init"])
    batch_size: StrictInt = Field(512, ge=1)
    max_train_samples: StrictInt | None = Field(None, ge=1)
    max_test_samples: StrictInt | None = Field(None, ge=1)
    # Helper C (issue 18): the registered evaluation protocols (omnissl list evaluations); None = [knn, linear_probe].
    protocols: list[Component] | None = Field(None, description="evaluation protocols, e.g. [{name: ts_rbf_svm}]")
    readout_block: StrictInt | None = Field(
        None, ge=1, description="read features from this transformer block (1 … depth), not the final output; "
        "for the trained and random-init encoder alike (layer-wise probing, SUPERB)")


_TOWER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # a folder name for `export` and a dotted-key part


def _normalise_towers(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(data in the towers form, whether the recipe was written in the short form)``.

    The short form ``encoder:`` + ``augment:`` is sugar for ``towers: {main: {encoder, augment}}``; after this every
    recipe has ``towers``, so no stage has to ask which form it was given.
    """
    short_keys = [key for key in ("encoder", "augment") if key in data]
    if "towers" in data:
        if short_keys:
            raise ValueError("'towers' replaces top-level 'encoder'/'augment': use one form, not both")
        return data, False
    if "encoder" not in data:
        raise ValueError("give either 'encoder' (one modality) or 'towers' (paired modalities)")
    rest = {key: value for key, value in data.items() if key not in short_keys}
    tower = {key: data[key] for key in short_keys if data[key] is not None}
    return {**rest, "towers": {"main": tower}}, True


class Recipe(Strict):
    """A validated recipe. ``towers`` is always filled: a single-modality recipe (``encoder:`` + ``augment:``)
    is the one tower ``main``; :func:`dump_recipe` writes it back in the short form it was written in."""

    name: str
    description: str = ""
    seed: StrictInt = 0
    plugins: list[str] = Field(default_factory=list, description="modality plugins this recipe needs")
    data: Component
    towers: dict[str, Tower] = Field(description="one entry per modality; 'encoder' + 'augment' is towers.main")
    objective: Component
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named sets of dotted-key overrides, e.g. the paper-scale GPU settings"
    )
    _short_form: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _towers_form(cls, data: Any, handler: Any) -> "Recipe":
        short = False
        if isinstance(data, dict):
            data, short = _normalise_towers(data)
        recipe = handler(data)
        if isinstance(recipe, Recipe) and short:
            recipe._short_form = True
        return recipe

    @field_validator("towers")
    @classmethod
    def _tower_names(cls, towers: dict[str, Tower]) -> dict[str, Tower]:
        if not towers:
            raise ValueError("needs at least one tower")
        bad = [name for name in towers if not _TOWER_NAME.match(name)]
        if bad:
            raise ValueError(f"tower name {bad[0]!r}: use letters, digits, '_', '-' or '.' (it names a folder)")
        return towers

    @property
    def short_form(self) -> bool:
        """Written as top-level ``encoder:``/``augment:``: error paths and dumps use those keys."""
        return self._short_form

    def tower_key(self, tower: str, part: str) -> str:
        """Where ``part`` of ``tower`` is written in the recipe: ``encoder`` or ``towers.<tower>.encoder``."""
        return part if self._short_form else f"towers.{tower}.{part}"

    @property
    def encoder(self) -> Component | None:
        """The encoder of a single-tower recipe (None with several towers): read-only shorthand."""
        return next(iter(self.towers.values())).encoder if len(self.towers) == 1 else None

    @property
    def augment(self) -> Augment | None:
        """The augmentation of a single-tower recipe (None with several towers): read-only shorthand."""
        return next(iter(self.towers.values())).augment if len(self.towers) == 1 else None

    def tower_specs(self) -> dict[str, Tower]:
        """Towers keyed by name (``recipe.towers``, a copy)."""
        return dict(self.towers)

    @property
    def is_paired(self) -> bool:
        """Several towers; their batches are ``{tower: input}`` (prefer :class:`omnissl.train.assemble.Assembled`'s
        per-tower accessors to branching on this)."""
        return len(self.towers) > 1


def _format_errors(error: ValidationError, model: type[BaseModel], source: str,
                   label: Callable[[str], str] = str, short_form: bool = False) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        shown = loc[2:] if short_form and loc[:2] == ("towers", "main") and len(loc) > 2 else loc
        path = label(".".join(str(part) for part in shown) or "(top level)")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(model, item["loc"])
        lines.append(f"{source}: {path}: {message}")
    return "\n".join(lines)


def _suggestion(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    current: Any = model
    keyed = False  # the previous part was a dict field (``towers``): this part is a key, not a field
    for part in loc[:-1]:
        if keyed:
            keyed = False
            continue
        field = getattr(current, "model_fields", {}).get(str(part))
        if field is None:
            field = next((f for f in getattr(current, "model_fields", {}).values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        keyed = getattr(annotation, "__origin__", None) is dict
        current = next((a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")), None)
        if current is None:
            return ""
    fields = getattr(current, "model_fields", {})
    names = [f.alias or n for n, f in fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"


def _check_context_only(recipe: Recipe, source: str, label: Callable[[str], str]) -> None:
    """``data_root``, ``seed`` and ``synthetic`` under ``data:`` (or a paired source) are refused, naming the key."""
    specs: list[tuple[str, Any]] = [("data", recipe.data.params)]
    sources = recipe.data.params.get("sources")
    if isinstance(sources, dict):
        specs += [(f"data.sources.{name}", spec) for name, spec in sources.items()]
    for path, params in specs:
        for key, reason in CONTEXT_ONLY.items():
            if isinstance(params, dict) and key in params:
                raise ConfigError(f"{source}: {label(f'{path}.{key}')}: not a recipe key ({reason})")


def _variant_label(variant: str, keys: list[str]) -> Callable[[str], str]:
    """Error paths a variant's keys produced are shown where they are written: ``variants.gpu.train.lr``."""
    def label(path: str) -> str:
        hit = any(path == key or path.startswith(f"{key}.") for key in keys)
        return f"variants.{variant}.{path}" if hit else path
    return label


def recipe_from_dict(raw: Any, *, source: str = "recipe", overrides: list[str] | None = None,
                     variant: str | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    label: Callable[[str], str] = str
    if variant is not None:
        variants = raw.get("variants") or {}
        if not isinstance(variants, dict) or variant not in variants:
            have = ", ".join(map(str, variants)) if isinstance(variants, dict) else "none"
            raise ConfigError(f"{source}: variants.{variant}: no such variant (have: {have or 'none'})")
        changes = variants[variant]
        if not isinstance(changes, dict):
            raise ConfigError(f"{source}: variants.{variant}: expected a mapping of dotted keys to values")
        raw = copy.deepcopy(raw)  # the variant's values are set as loaded, not dumped and re-parsed
        for key, value in changes.items():
            set_dotted(raw, str(key).split("."), value, label=f"{source}: variants.{variant}.{key}")
        label = _variant_label(variant, [str(key) for key in changes])
    raw = apply_overrides(raw, overrides or [])
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as error:  # a short-form recipe's errors name the keys it wrote (augment.global...)
        short = isinstance(raw, dict) and "towers" not in raw
        raise ConfigError(_format_errors(error, Recipe, source, label, short_form=short)) from None
    _check_context_only(recipe, source, label)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None, variant: str | None = None) -> Recipe:
    return recipe_from_dict(read_yaml_file(path), source=str(path), overrides=overrides, variant=variant)


def variant_recipes(path: str | Path, overrides: list[str] | None = None) -> dict[str, Recipe]:
    """Every variant of the recipe file, validated (``omnissl validate`` checks unused variants too)."""
    raw = read_yaml_file(path)
    variants = raw.get("variants") if isinstance(raw, dict) else None
    if not isinstance(variants, dict):
        return {}
    return {str(name): recipe_from_dict(raw, source=str(path), overrides=overrides, variant=str(name))
            for name in variants}


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data in the form it was written: a short-form recipe gets its ``encoder``/``augment``
    back in place of ``towers``, so a run's ``recipe.yaml`` reads like the file the user wrote."""
    dumped = recipe.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not recipe.short_form:
        return dumped
    main = dumped["towers"]["main"]
    out: dict[str, Any] = {}
    for key, value in dumped.items():
        if key == "towers":
            out["encoder"], out["augment"] = main["encoder"], main["augment"]
        else:
            out[key] = value
    return out


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_dict(recipe), sort_keys=False)


def recipe_differences(a: Any, b: Any, *, prefix: str = "") -> list[str]:
    """Sorted dotted key paths where two recipe dumps differ (``train.lr``, ``augment.global.ops.0.p``).

    Resume refuses a changed recipe; naming the key, not just the section, tells the user what to undo. Lists of
    equal length are compared item by item; a list that changed length is one difference.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        paths: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                paths.append(where)
            else:
                paths += recipe_differences(a[key], b[key], prefix=where)
        return sorted(paths)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return sorted(p for i, (x, y) in enumerate(zip(a, b)) for p in
                      recipe_differences(x, y, prefix=f"{prefix}.{i}" if prefix else str(i)))
    return [] if a == b else [prefix or "(top level)"]
