"""Named registries of components, filled by decorators in the core and in modality plugins.

Plugins are discovered through the ``omnissl.modalities`` entry-point group (the same path for built-in and
third-party plugins) and imported lazily, the first time a name is looked up or listed.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib.metadata
import inspect
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from omnissl.errors import RegistryError

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
            raise RegistryError(
                f"unknown {self.kind} '{name}'.{hint} Available: {', '.join(names) or '(none)'}"
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
REGISTRIES: dict[str, Registry[Callable[..., Any]]] = {
    "encoders": ENCODERS,
    "augmentations": AUGMENTATIONS,
    "objectives": OBJECTIVES,
    "datasets": DATASETS,
}

_loaded = False
_lock = threading.RLock()


def load_plugins() -> list[str]:
    """Import the core's own components and every installed plugin once; return the plugin names."""
    global _loaded
    with _lock:
        if _loaded:
            return sorted(ep.name for ep in _plugin_entry_points())
        _loaded = True
        importlib.import_module("omnissl.components")
        names = []
        for entry_point in _plugin_entry_points():
            try:
                with warnings.catch_warnings():
                    # Third-party libraries a plugin imports (e.g. PyG on torch ≥ 2.10) warn about their own use of
                    # torch.jit.script at import time; users can do nothing about it.
                    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
                    entry_point.load()
            except Exception as error:  # a broken plugin must say which one it is
                _loaded = False
                raise RegistryError(
                    f"modality plugin '{entry_point.name}' ({entry_point.value}) failed to load: {error}"
                ) from error
            names.append(entry_point.name)
        return sorted(names)


def _plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
