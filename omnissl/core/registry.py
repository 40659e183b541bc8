"""Named registries of components, filled by decorators in the core and in modality plugins.

Plugins are discovered through the ``omnissl.modalities`` entry-point group (the same path for built-in and
third-party plugins) and imported lazily, the first time a name is looked up or listed.

A plugin whose optional dependencies are not installed is *unavailable*, not an error: a core-only install
(``pip install omnissl``) must still list and train the modalities it has. A plugin's optional dependencies are
the requirements of the extra named after it in its distribution's metadata (``omnissl[graph]`` for ``graph``),
so a third-party plugin gets the same treatment by declaring such an extra.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import re
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from omnissl.core.errors import ConfigError, RegistryError

ENTRY_POINT_GROUP = "omnissl.modalities"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Entry:
    """One registered builder with the facts `omnissl list` shows."""

    name: str
    builder: Callable[..., Any]
    modality: str
    description: str
    kind: str
    example_params: dict[str, Any] | None = None

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.builder)


class Registry(Generic[F]):
    """A name → builder table. Duplicate names are an error; unknown names suggest the closest match."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, modality: str = "any", description: str = "",
                 example_params: dict[str, Any] | None = None) -> Callable[[F], F]:
        """Decorator: ``@ENCODERS.register("resnet18", modality="image", description="...")``.

        ``example_params``: parameters the registry tests pass when a builder has a required parameter that
        neither a default nor the data's ``input_spec`` supplies (e.g. a model directory).
        """

        def decorate(builder: F) -> F:
            if name in self._entries:
                previous = self._entries[name].builder
                raise RegistryError(
                    f"{self.kind} '{name}' is already registered by "
                    f"{previous.__module__}.{previous.__qualname__}; choose another name"
                )
            doc = description or (inspect.getdoc(builder) or "").split("\n", 1)[0]
            self._entries[name] = Entry(name, builder, modality, doc, self.kind, example_params)
            return builder

        return decorate

    def unregister(self, name: str) -> None:
        """Remove an entry (used by tests that register temporary components)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            load_plugins()
        if name not in self._entries:
            names = sorted(self._entries)
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            # The name may belong to a plugin that could not load: say how to get it rather than only "unknown".
            absent = "".join(f"; {reason}" for reason in unavailable_plugins().values())
            raise RegistryError(
                f"unknown {self.kind} '{name}'.{hint} Available: {', '.join(names) or '(none)'}{absent}"
            )
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> Iterator[Entry]:
        load_plugins()
        for name in sorted(self._entries):
            yield self._entries[name]

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return name in self._entries


ENCODERS: Registry[Callable[..., Any]] = Registry("encoder")
AUGMENTATIONS: Registry[Callable[..., Any]] = Registry("augmentation")
OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective")
DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
EVALUATIONS: Registry[Callable[..., Any]] = Registry("evaluation")
REGISTRIES: dict[str, Registry[Callable[..., Any]]] = {
    "encoders": ENCODERS,
    "augmentations": AUGMENTATIONS,
    "objectives": OBJECTIVES,
    "datasets": DATASETS,
    "evaluations": EVALUATIONS,
}

_loaded = False
_lock = threading.RLock()
_available: list[str] = []
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class UnavailablePlugin:
    """An installed plugin that was not loaded because an optional dependency is missing, and how to add it."""

    name: str
    module: str
    install: str

    def __str__(self) -> str:
        return f"plugin '{self.name}' needs {self.module}: {self.install}"


_unavailable: dict[str, UnavailablePlugin] = {}


def load_plugins() -> list[str]:
    """Import the core's own components and every installed plugin once; return the names of those that loaded.

    A plugin with a missing optional dependency is skipped and recorded (see :func:`unavailable_plugins`); any
    other import failure is a :class:`RegistryError` naming the plugin, because it is a bug, not a choice.
    """
    global _loaded
    with _lock:
        if _loaded:
            return list(_available)
        _loaded = True
        importlib.import_module("omnissl.components")
        names: list[str] = []
        skipped: dict[str, UnavailablePlugin] = {}
        for entry_point in _plugin_entry_points():
            missing = _missing_extra(entry_point)
            if missing is not None:  # checked from metadata first: some plugins import their dependency lazily
                skipped[entry_point.name] = missing
                continue
            before = _snapshot()
            try:
                with warnings.catch_warnings():
                    # Third-party libraries a plugin imports (e.g. PyG on torch ≥ 2.10) warn about their own use of
                    # torch.jit.script at import time; users can do nothing about it.
                    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
                    entry_point.load()
            except Exception as error:  # a broken plugin must say which one it is
                _rollback(before, entry_point)
                reason = _optional_dependency(entry_point, error)
                if reason is None:
                    _loaded = False
                    raise RegistryError(
                        f"modality plugin '{entry_point.name}' ({entry_point.value}) failed to load: {error}"
                    ) from error
                skipped[entry_point.name] = reason
                continue
            names.append(entry_point.name)
        _available[:] = sorted(names)
        _unavailable.clear()
        _unavailable.update(sorted(skipped.items()))
        return list(_available)


def unavailable_plugins() -> dict[str, UnavailablePlugin]:
    """Installed plugins that could not load for want of an optional dependency, by plugin name."""
    load_plugins()
    return dict(_unavailable)


def require_plugins(*, names: Iterable[str], key: str = "plugins") -> None:
    """Raise a one-line :class:`ConfigError` unless every named plugin loaded.

    An unavailable plugin is named with the pip command that adds its extra, so a recipe for a modality the user
    did not install says exactly what to install instead of failing later on an unknown component.
    """
    available = load_plugins()
    wanted = list(dict.fromkeys(names))
    reasons = [str(_unavailable[name]) for name in wanted if name in _unavailable]
    absent = [name for name in wanted if name not in available and name not in _unavailable]
    if absent:
        reasons.append(
            f"{', '.join(absent)} not installed (installed: {', '.join(available) or 'none'}); install the plugin "
            f"package so it registers under the '{ENTRY_POINT_GROUP}' entry points"
        )
    if reasons:
        raise ConfigError(f"{key}: {'; '.join(reasons)}")


def _plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _normalise(name: str) -> str:
    """PEP 503 name normalisation, so ``torch_geometric``, ``torch-geometric`` and ``Torch.Geometric`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _extra_requirements(entry_point: importlib.metadata.EntryPoint, extra: str) -> list[str]:
    """Distribution names the plugin's own distribution requires under ``extra`` (empty when it has no such extra)."""
    dist = getattr(entry_point, "dist", None)
    requirements = (dist.requires or []) if dist is not None else []
    found = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = _EXTRA_MARKER.search(marker)
        name = _REQUIREMENT_NAME.match(spec.strip())
        if match and name and _normalise(match.group(1)) == _normalise(extra):
            found.append(name.group(0))
    return found


def _install_hint(entry_point: importlib.metadata.EntryPoint, extra: str) -> str:
    dist = getattr(entry_point, "dist", None)
    project = dist.metadata["Name"] if dist is not None else entry_point.name
    return f"pip install '{project}[{extra}]'"


def _module_name(requirement: str) -> str:
    """The import name a distribution name usually has (true of every extra this project declares)."""
    return _normalise(requirement).replace("-", "_")


def _missing_extra(entry_point: importlib.metadata.EntryPoint) -> UnavailablePlugin | None:
    for requirement in _extra_requirements(entry_point, entry_point.name):
        try:
            importlib.metadata.distribution(requirement)
        except importlib.metadata.PackageNotFoundError:
            return UnavailablePlugin(entry_point.name, _module_name(requirement),
                                     _install_hint(entry_point, entry_point.name))
    return None


def _optional_dependency(entry_point: importlib.metadata.EntryPoint, error: Exception) -> UnavailablePlugin | None:
    """The missing optional dependency behind ``error``, or None when the failure is something else."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    module = error.name.split(".")[0]
    dist = getattr(entry_point, "dist", None)
    extras = [entry_point.name, *((dist.metadata.get_all("Provides-Extra") or []) if dist is not None else [])]
    for extra in extras:
        if _normalise(module) in {_normalise(r) for r in _extra_requirements(entry_point, extra)}:
            return UnavailablePlugin(entry_point.name, module, _install_hint(entry_point, extra))
    return None


def _snapshot() -> tuple[dict[str, set[str]], set[str]]:
    return {kind: set(registry._entries) for kind, registry in REGISTRIES.items()}, set(sys.modules)


def _rollback(before: tuple[dict[str, set[str]], set[str]], entry_point: importlib.metadata.EntryPoint) -> None:
    """Forget what a plugin registered before its import failed, so it neither half-appears nor blocks a retry."""
    entries, modules = before
    for kind, registry in REGISTRIES.items():
        for name in set(registry._entries) - entries[kind]:
            registry.unregister(name)
    package = entry_point.value.split(":")[0].split(".")[0]
    for name in set(sys.modules) - modules:
        if name == package or name.startswith(package + "."):
            del sys.modules[name]
