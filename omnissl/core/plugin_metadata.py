"""What a plugin's installed metadata says about its optional dependencies, read without importing the plugin.

A plugin's optional dependencies are the requirements of the extra named after it in its distribution's metadata
(``omnissl[graph]`` for ``graph``), so a third-party plugin gets the same treatment by declaring such an extra.
Used by :mod:`omnissl.core.registry` before importing a plugin, and by ``omnissl list`` (served from manifests)
to say which plugins cannot load without importing any of them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass

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


def normalise(name: str) -> str:
    """PEP 503 name normalisation, so ``torch_geometric``, ``torch-geometric`` and ``Torch.Geometric`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_requirements(entry_point: importlib.metadata.EntryPoint, extra: str) -> list[str]:
    """Distribution names the plugin's own distribution requires under ``extra`` (empty when it has no such extra)."""
    dist = getattr(entry_point, "dist", None)
    requirements = (dist.requires or []) if dist is not None else []
    found = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        match = _EXTRA_MARKER.search(marker)
        name = _REQUIREMENT_NAME.match(spec.strip())
        if match and name and normalise(match.group(1)) == normalise(extra):
            found.append(name.group(0))
    return found


def install_hint(entry_point: importlib.metadata.EntryPoint, extra: str) -> str:
    dist = getattr(entry_point, "dist", None)
    project = dist.metadata["Name"] if dist is not None else entry_point.name
    return f"pip install '{project}[{extra}]'"


def module_name(requirement: str) -> str:
    """The import name a distribution name usually has (true of every extra this project declares)."""
    return normalise(requirement).replace("-", "_")


def _cannot_import(requirement: str) -> bool:
    """True when the requirement's distribution is installed but its module cannot be found (a broken or blocked
    install). Only a module the distribution itself ships counts, so a distribution whose import name differs
    from its project name (scikit-learn → sklearn) is never reported missing by this check."""
    name = module_name(requirement)
    try:
        if importlib.util.find_spec(name) is not None:
            return False
    except (ImportError, ValueError):  # a module blocked with sys.modules[name] = None, or a half-set-up one
        return True
    files = importlib.metadata.distribution(requirement).files or []
    return any(f.parts and f.parts[0] in (name, f"{name}.py") for f in files)


def missing_extra(entry_point: importlib.metadata.EntryPoint) -> UnavailablePlugin | None:
    """The first requirement of the plugin's extra that is not installed, without importing anything."""
    for requirement in extra_requirements(entry_point, entry_point.name):
        try:
            importlib.metadata.distribution(requirement)
        except importlib.metadata.PackageNotFoundError:
            missing = True
        else:
            missing = _cannot_import(requirement)
        if missing:
            return UnavailablePlugin(entry_point.name, module_name(requirement),
                                     install_hint(entry_point, entry_point.name))
    return None


def optional_dependency(entry_point: importlib.metadata.EntryPoint, error: Exception) -> UnavailablePlugin | None:
    """The missing optional dependency behind ``error``, or None when the failure is something else."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    module = error.name.split(".")[0]
    dist = getattr(entry_point, "dist", None)
    extras = [entry_point.name, *((dist.metadata.get_all("Provides-Extra") or []) if dist is not None else [])]
    for extra in extras:
        if normalise(module) in {normalise(r) for r in extra_requirements(entry_point, extra)}:
            return UnavailablePlugin(entry_point.name, module, install_hint(entry_point, extra))
    return None
