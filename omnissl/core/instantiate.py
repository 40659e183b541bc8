"""Turn recipe components into objects: check each parameter against the registered builder's signature.

Builders are plain functions with keyword-only, typed parameters. A parameter the recipe leaves out is filled
from the *context* when a value of the same name is there (``encoder`` for objectives, ``in_channels`` or
``vocab_size`` from the data bundle's ``input_spec``), otherwise the builder's default applies.

Inside ``with recording() as calls:`` every successful :func:`build_component` appends a :class:`ResolvedCall`:
each keyword argument the builder got and where it came from — ``recipe``, ``input_spec`` (a
:class:`BuildContext` says which context values the dataset published), ``context`` (data root, seed, the
encoder an objective wraps) or ``default``. A run writes them to ``resolved.yaml`` (``omnissl.train.resolved``).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import ConfigDict, TypeAdapter, ValidationError

from omnissl.core.config import Component
from omnissl.core.errors import ConfigError, OmnisslError, RegistryError
from omnissl.core.registry import Entry, Registry

_ADAPTER_CONFIG = ConfigDict(arbitrary_types_allowed=True, strict=False)
SOURCES = ("recipe", "input_spec", "context", "default")


class BuildContext(dict):  # type: ignore[type-arg]
    """Context values for :func:`build_component` that know their source: ``input_spec`` entries (what the dataset
    published: ``in_channels``, ``vocab_size`` …) and other ``context`` (data root, seed, an objective's encoder)."""

    def __init__(self, *, input_spec: Mapping[str, Any] | None = None,
                 context: Mapping[str, Any] | None = None) -> None:
        super().__init__({**(input_spec or {}), **(context or {})})
        self.sources = {**{k: "input_spec" for k in input_spec or {}}, **{k: "context" for k in context or {}}}


@dataclass
class ResolvedCall:
    """One builder call: ``params`` maps each keyword argument to ``{"value": …, "source": …}``; a value that is
    not plain data (an encoder module, a tensor) is recorded as ``"<TypeName>"`` with ``"plain": False``."""

    path: str
    kind: str
    name: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


_RECORDER: ContextVar[list[ResolvedCall] | None] = ContextVar("omnissl_resolved_calls", default=None)


@contextmanager
def recording() -> Iterator[list[ResolvedCall]]:
    """Collect the :class:`ResolvedCall` of every component built inside the block (nested builds included)."""
    calls: list[ResolvedCall] = []
    token = _RECORDER.set(calls)
    try:
        yield calls
    finally:
        _RECORDER.reset(token)


# The context of the builder call in progress: a builder that builds nested components from the same context
# (``compose`` builds each of its terms like a top-level objective) reads it through :func:`current_context`.
_BUILDING: ContextVar[Mapping[str, Any] | None] = ContextVar("omnissl_build_context", default=None)


def current_context() -> Mapping[str, Any]:
    """The context (a :class:`BuildContext` when the caller gave one) of the builder now running, else ``{}``."""
    return _BUILDING.get() or {}


def plain_value(value: Any) -> tuple[Any, bool]:
    """``(value as YAML/JSON data, whether that is exact)``: tuples → lists, paths → strings; other objects →
    ``"<TypeName>"`` and ``False``."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value, True
    if isinstance(value, Path):
        return str(value), True
    if isinstance(value, (list, tuple)):
        items = [plain_value(v) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    if isinstance(value, dict):
        pairs = {str(k): plain_value(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, all(ok for _, ok in pairs.values())
    return f"<{type(value).__name__}>", False


def _record(entry: Entry, path: str, kwargs: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    calls = _RECORDER.get()
    if calls is None:
        return
    call = ResolvedCall(path=path, kind=entry.kind, name=entry.name)
    for name, parameter in entry.signature.parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        source = sources.get(name, "default")
        value, exact = plain_value(kwargs[name] if name in kwargs else parameter.default)
        call.params[name] = {"value": value, "source": source, **({} if exact else {"plain": False})}
    calls.append(call)


def _type_hints(entry: Entry) -> dict[str, Any]:
    try:
        return typing.get_type_hints(entry.builder)
    except Exception:  # an unresolvable annotation must not hide the real error; fall back to no checks
        return {}


def resolve_entry(registry: Registry[Any], spec: Component, path: str) -> Entry:
    try:
        return registry.get(spec.name)
    except RegistryError as error:
        raise ConfigError(f"{path}.name: {error}") from None


def check_params(entry: Entry, params: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Validate ``params`` against ``entry``'s keyword parameters; return them converted to their types."""
    signature = entry.signature
    accepted = {
        name: p for name, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    hints = _type_hints(entry)
    checked: dict[str, Any] = {}
    for key, value in params.items():
        if key not in accepted:
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(
                f"{path}.{key}: unknown parameter of {entry.kind} '{entry.name}'{hint}; "
                f"accepts: {', '.join(accepted) or 'none'}"
            )
        annotation = hints.get(key)
        if annotation is None:
            checked[key] = value
            continue
        try:
            checked[key] = TypeAdapter(annotation, config=_ADAPTER_CONFIG).validate_python(value)
        except ValidationError as error:
            message = error.errors()[0]["msg"]
            raise ConfigError(f"{path}.{key}: {message} (got {value!r})") from None
        except Exception:  # annotations pydantic cannot build a validator for are passed through
            checked[key] = value
        if isinstance(value, bool) and not isinstance(checked[key], bool):
            # Lax validation reads `width: true` as 1: a bool where a number goes is a typo, not a value.
            raise ConfigError(f"{path}.{key}: expected {_type_name(annotation)}, got a bool ({value!r})")
    return checked


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def build_component(registry: Registry[Any], spec: Component, path: str,
                    context: Mapping[str, Any] | None = None) -> Any:
    """Build ``spec`` from ``registry``; errors name ``path`` (e.g. ``objective.temperature``)."""
    entry = resolve_entry(registry, spec, path)
    kwargs = check_params(entry, spec.params, path)
    sources = {name: "recipe" for name in kwargs}
    context = context or {}
    context_sources = getattr(context, "sources", {})
    for name, parameter in entry.signature.parameters.items():
        if name in kwargs or parameter.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            continue
        if name in context:
            kwargs[name] = context[name]
            sources[name] = context_sources.get(name, "context")
        elif parameter.default is inspect.Parameter.empty:
            raise ConfigError(f"{path}: {entry.kind} '{entry.name}' needs parameter '{name}'")
    token = _BUILDING.set(context)
    try:
        built = entry.builder(**kwargs)
    except OmnisslError:
        raise  # already names its file / key
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{path}: {entry.kind} '{entry.name}': {error}") from error
    except Exception as error:  # noqa: BLE001 - e.g. torch's "negative dimension" for width: -4, or an HF
        # UnpicklingError: whatever a builder raises, the user needs the recipe key that caused it (F19, F23).
        raise ConfigError(f"{path}: building '{entry.name}' failed: {_one_line(error)}") from error
    finally:
        _BUILDING.reset(token)
    _record(entry, path, kwargs, sources)
    return built


def check_components(recipe: Any) -> None:
    """Names and parameters of every component of ``recipe`` against their builders, without building anything:
    cheap enough to run on each of a recipe's variants (paper-scale models included) in ``omnissl validate``."""
    from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS, OBJECTIVES

    checks: list[tuple[Registry[Any], Component, str]] = [(DATASETS, recipe.data, "data"),
                                                          (OBJECTIVES, recipe.objective, "objective")]
    for name, tower in recipe.tower_specs().items():
        checks.append((ENCODERS, tower.encoder, recipe.tower_key(name, "encoder")))
        for group_name, group in (("global", tower.augment.global_views), ("local", tower.augment.local_views)):
            if group is None:
                continue
            where = f"{recipe.tower_key(name, 'augment')}.{group_name}"
            checks += [(AUGMENTATIONS, op, f"{where}.ops.{i}") for i, op in enumerate(group.ops)]
            checks += [(AUGMENTATIONS, op, f"{where}.per_view.{v}.{i}")
                       for v, ops in enumerate(group.per_view or []) for i, op in enumerate(ops)]
    from omnissl.core.registry import EVALUATIONS  # helper C (issue 18): the recipe's evaluation protocols

    checks += [(EVALUATIONS, spec, f"eval.protocols.{i}") for i, spec in enumerate(recipe.eval.protocols or [])]
    for registry, spec, path in checks:
        check_params(resolve_entry(registry, spec, path), spec.params, path)
