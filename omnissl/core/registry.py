"""Named registries of components, filled by decorators in the core and in modality plugins.

Everything registers through entry points, one mechanism for all: modality plugins under the
``omnissl.modalities`` group (built-in and third-party alike), the core's own components (its objectives, the
paired dataset) under ``omnissl.components``. Nothing here imports a component module by name, so there is no
import cycle. Entry points are imported lazily: a lookup of one name imports only the entry points whose manifest
(:mod:`omnissl.core.manifests`) lists it; listing everything imports everything. A lookup made *while* an entry
point is being imported raises :class:`RegistryError` rather than answering from a half-filled registry.

A plugin whose optional dependencies are not installed is *unavailable*, not an error: a core-only install
(``pip install omnissl``) must still list and train the modalities it has (see :mod:`omnissl.core.plugin_metadata`).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from omnissl.core.errors import ConfigError, RegistryError
from omnissl.core.manifests import manifest_components
from omnissl.core.plugin_metadata import _REQUIREMENT_NAME, UnavailablePlugin, missing_extra, optional_dependency

ENTRY_POINT_GROUP = "omnissl.modalities"
COMPONENT_GROUP = "omnissl.components"  # the core's own components (objectives, the paired dataset)
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
            _load_providers(self.kind, name)
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

    def entries(self, *, load: bool = True) -> Iterator[Entry]:
        """Every entry (``load=False``: only those of the entry points imported so far, importing nothing)."""
        if load:
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

_loaded = False  # every entry point of both groups has been tried
_lock = threading.RLock()
_available: list[str] = []  # modality plugins that loaded
_unavailable: dict[str, UnavailablePlugin] = {}
_done: set[tuple[str, str]] = set()  # (group, name) of entry points tried, loaded or found unavailable
_loading: list[str] = []  # entry points being imported now (only ever by the thread holding _lock)

__all__ = ["COMPONENT_GROUP", "ENTRY_POINT_GROUP", "REGISTRIES", "Entry", "Registry", "UnavailablePlugin",
           "_REQUIREMENT_NAME", "entry_points", "known_unavailable", "load_entry_point", "load_plugins", "require_plugins",
           "unavailable_plugins"]


def load_plugins() -> list[str]:
    """Import the core's own components and every installed plugin once; return the names of the modality plugins
    that loaded.

    A plugin with a missing optional dependency is skipped and recorded (see :func:`unavailable_plugins`); any
    other import failure is a :class:`RegistryError` naming the plugin, because it is a bug, not a choice.
    """
    global _loaded
    with _lock:
        _refuse_while_loading("a registry lookup")
        if not _loaded:
            for entry_point in entry_points():
                load_entry_point(entry_point)
            _loaded = True
        return sorted(_available)


def entry_points() -> list[importlib.metadata.EntryPoint]:
    """The core's component entry points, then the modality plugins'."""
    return [*_component_entry_points(), *_plugin_entry_points()]


def load_entry_point(entry_point: importlib.metadata.EntryPoint) -> bool:
    """Import one entry point (once); False when it is unavailable for want of an optional dependency."""
    key = (entry_point.group, entry_point.name)
    with _lock:
        if key in _done:
            return entry_point.name not in _unavailable
        if entry_point.group != COMPONENT_GROUP:
            # The core's components first: a plugin importing a core objective module must not register it as its
            # own (a rollback of the plugin would then drop it for good).
            for core in _component_entry_points():
                load_entry_point(core)
        missing = missing_extra(entry_point)  # checked from metadata first: some plugins import lazily
        if missing is not None:
            _unavailable[entry_point.name] = missing
            _done.add(key)
            return False
        before = _snapshot()
        _loading.append(entry_point.name)
        try:
            with warnings.catch_warnings():
                # Third-party libraries a plugin imports (e.g. PyG on torch >= 2.10) warn about their own use of
                # torch.jit.script at import time; users can do nothing about it.
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
                entry_point.load()
        except Exception as error:  # a broken plugin must say which one it is
            _rollback(before, entry_point)
            reason = optional_dependency(entry_point, error)
            if reason is None:
                what = "modality plugin" if entry_point.group == ENTRY_POINT_GROUP else "core components"
                raise RegistryError(
                    f"{what} '{entry_point.name}' ({entry_point.value}) failed to load: {error}"
                ) from error
            _unavailable[entry_point.name] = reason
            _done.add(key)
            return False
        finally:
            _loading.pop()
        _done.add(key)
        if entry_point.group != COMPONENT_GROUP:
            _available.append(entry_point.name)
        return True


def unavailable_plugins() -> dict[str, UnavailablePlugin]:
    """Installed plugins that could not load for want of an optional dependency, by plugin name."""
    load_plugins()
    return dict(sorted(_unavailable.items()))


def known_unavailable() -> dict[str, UnavailablePlugin]:
    """The entry points found unavailable so far, without loading any more."""
    return dict(_unavailable)


def require_plugins(*, names: Iterable[str], key: str = "plugins") -> None:
    """Load the named plugins (only those); raise a one-line :class:`ConfigError` unless every one loaded.

    An unavailable plugin is named with the pip command that adds its extra, so a recipe for a modality the user
    did not install says exactly what to install instead of failing later on an unknown component.
    """
    wanted = list(dict.fromkeys(names))
    installed = {ep.name: ep for ep in _plugin_entry_points()}
    with _lock:
        _refuse_while_loading(f"{key}: loading {', '.join(wanted)}")
        for name in wanted:
            if name in installed:
                load_entry_point(installed[name])
    reasons = [str(_unavailable[name]) for name in wanted if name in installed and name in _unavailable]
    absent = [name for name in wanted if name not in installed]
    if absent:
        usable = sorted(n for n in installed if n not in _unavailable)
        reasons.append(
            f"{', '.join(absent)} not installed (installed: {', '.join(usable) or 'none'}); install the plugin "
            f"package so it registers under the '{ENTRY_POINT_GROUP}' entry points"
        )
    if reasons:
        raise ConfigError(f"{key}: {'; '.join(reasons)}")


def _load_providers(kind: str, name: str) -> None:
    """Import what provides ``kind`` ``name``: the entry points whose manifest lists it, else everything (an entry
    point without a current manifest may provide anything)."""
    with _lock:
        _refuse_while_loading(f"looking up {kind} '{name}'")
        if _loaded:
            return
        pending = [ep for ep in entry_points() if (ep.group, ep.name) not in _done]
        providers = [ep for ep in pending
                     if any(c.get("kind") == kind and c.get("name") == name for c in manifest_components(ep) or [])]
        for entry_point in providers:
            load_entry_point(entry_point)
        registry = next(r for r in REGISTRIES.values() if r.kind == kind) if providers else None
        if registry is None or name not in registry._entries:
            load_plugins()


def _refuse_while_loading(action: str) -> None:
    if _loading:
        raise RegistryError(
            f"{action} while '{_loading[-1]}' is still being imported: the registry is only half-filled then. "
            f"Look components up when a builder runs, not at import time"
        )


def _component_entry_points() -> list[importlib.metadata.EntryPoint]:
    found = list(importlib.metadata.entry_points(group=COMPONENT_GROUP))
    if not found:  # e.g. a stale omnissl.egg-info in the working directory shadowing the installed metadata
        raise RegistryError(f"no '{COMPONENT_GROUP}' entry points: omnissl's installed metadata is stale or "
                            f"shadowed (remove any stale omnissl.egg-info in the current folder, then reinstall: "
                            f"pip install -e .)")
    return found


def _plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _snapshot() -> tuple[dict[str, set[str]], set[str]]:
    return {kind: set(registry._entries) for kind, registry in REGISTRIES.items()}, set(sys.modules)


def _rollback(before: tuple[dict[str, set[str]], set[str]], entry_point: importlib.metadata.EntryPoint) -> None:
    """Forget what an entry point registered before its import failed, so it neither half-appears nor blocks a
    retry. Only the entry point's own modules are dropped from ``sys.modules`` (for a plugin, its whole package):
    dropping core modules would leave two copies of their classes."""
    entries, modules = before
    for kind, registry in REGISTRIES.items():
        for name in set(registry._entries) - entries[kind]:
            registry.unregister(name)
    module = entry_point.value.split(":")[0].strip()
    for name in set(sys.modules) - modules:
        if name == module or name.startswith(module + "."):
            del sys.modules[name]
