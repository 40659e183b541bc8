"""Per-plugin manifests: every component a plugin registers, written as JSON beside its code, so ``omnissl list``
and the choice of which plugins a recipe needs are answered without importing any plugin (importing them all
costs seconds: torch_geometric alone pulls in transformers).

A manifest is ``manifest.json`` in the directory of the entry point's module (a plugin package's own folder;
``omnissl/objectives/`` for the core objectives), keyed by entry-point name::

    {"image": {"source_hash": "...", "components": [{"registry": "encoders", "name": "resnet18", ...}]}}

``source_hash`` covers the ``*.py`` files of that directory: when the code changed after the manifest was written,
the manifest is not trusted and the plugin is imported instead (slower, never wrong). The manifests are generated
from the live registry by ``make manifests`` (``python -m omnissl.workflows.manifests --write``), and
``tests/core/test_manifests.py`` fails when one differs from the live registry.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
REGENERATE = "make manifests  (or: .venv/bin/python -m omnissl.workflows.manifests --write)"


def _type(parameter: inspect.Parameter) -> str:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return "any"
    # Builders use postponed annotations, so this is usually the source text itself ("int | None"): the most
    # readable form; a resolved type is shown by name.
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def entry_record(entry: Any, registry: str) -> dict[str, Any]:
    """What ``omnissl list`` and ``list --params`` show of one registered :class:`~omnissl.core.registry.Entry`;
    defaults and examples are kept as their ``repr`` (the text the listing prints)."""
    params = []
    for name, p in entry.signature.parameters.items():
        if p.kind not in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            continue
        param: dict[str, Any] = {"name": name, "type": _type(p)}
        if p.default is not inspect.Parameter.empty:
            param["default"] = repr(p.default)
        elif name in (entry.example_params or {}):
            param["example"] = repr(entry.example_params[name])
        params.append(param)
    return {"registry": registry, "kind": entry.kind, "name": entry.name, "modality": entry.modality,
            "description": entry.description, "params": params}


def entry_point_dir(entry_point: importlib.metadata.EntryPoint) -> Path | None:
    """The folder holding the entry point's module, found without importing it (None for a top-level
    single-file module: its folder is site-packages, so it has no manifest and is simply imported)."""
    parts = entry_point.value.split(":")[0].strip().split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts[1:])
    if len(parts) == 1 or folder.is_dir():
        return folder
    return folder.parent if folder.with_suffix(".py").is_file() else None


def source_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _read(folder: Path) -> tuple[dict[str, Any], str]:
    path = folder / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data, source_hash(folder)


def manifest_components(entry_point: importlib.metadata.EntryPoint) -> list[dict[str, Any]] | None:
    """The entry point's components from its manifest, or None when it has none or the code changed since."""
    folder = entry_point_dir(entry_point)
    if folder is None:
        return None
    data, current = _read(folder)
    section = data.get(entry_point.name)
    if not isinstance(section, dict) or section.get("source_hash") != current:
        return None
    return list(section.get("components", []))


def forget_cache() -> None:
    """Re-read manifests and hashes on the next call (after writing them)."""
    _read.cache_clear()
