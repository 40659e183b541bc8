"""Write and check the per-plugin manifests (:mod:`omnissl.core.manifests`) from the live registry.

    make manifests                                        # rewrite every manifest after adding a component
    .venv/bin/python -m omnissl.workflows.manifests --write
    .venv/bin/python -m omnissl.workflows.manifests       # only report what differs (exit 1 when anything does)

Each registered entry belongs to the entry point whose module defines its builder (``omnissl_image.encoders`` →
``image``; ``omnissl.objectives.simclr`` → ``objectives``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any

from omnissl.core.errors import RegistryError
from omnissl.core.manifests import MANIFEST_NAME, REGENERATE, entry_point_dir, entry_record, forget_cache, source_hash
from omnissl.core.registry import REGISTRIES, entry_points, load_entry_point, load_plugins


def _module(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.value.split(":")[0].strip()


def _owner(module: str, points: list[importlib.metadata.EntryPoint]) -> importlib.metadata.EntryPoint | None:
    """The entry point a builder defined in ``module`` belongs to: its own module, else the package it lives in."""
    for entry_point in points:
        if module == _module(entry_point):
            return entry_point
    for entry_point in points:
        own = _module(entry_point)
        package = own if hasattr(sys.modules.get(own), "__path__") else own.rpartition(".")[0]
        if module.startswith(package + "."):
            return entry_point
    return None


def live_components(points: list[importlib.metadata.EntryPoint] | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{entry-point name: [component record, ...]}`` from the loaded registry, for the entry points that loaded.

    Raises :class:`RegistryError` for a registered entry that belongs to no entry point (registered from a module
    no entry point imports, so no fresh process would ever see it).
    """
    points = points if points is not None else entry_points()
    loaded = [ep for ep in points if load_entry_point(ep)]
    found: dict[str, list[dict[str, Any]]] = {ep.name: [] for ep in loaded}
    orphans = []
    for key, registry in REGISTRIES.items():
        for entry in registry.entries(load=False):
            owner = _owner(entry.builder.__module__, entry_points())
            if owner is None:
                orphans.append(f"{entry.kind} '{entry.name}' ({entry.builder.__module__})")
            elif owner.name in found:
                found[owner.name].append(entry_record(entry, key))
    if orphans:
        raise RegistryError(f"registered outside every entry point's package: {', '.join(orphans)}")
    return {name: sorted(records, key=lambda r: (r["registry"], r["name"])) for name, records in found.items()}


def _on_disk(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def differences() -> list[str]:
    """One line per entry point whose manifest does not list exactly the live registry's components."""
    load_plugins()
    lines = []
    for entry_point in entry_points():
        live = live_components([entry_point]).get(entry_point.name)
        folder = entry_point_dir(entry_point)
        if live is None or folder is None:  # unavailable here (extra not installed) or a single-file module
            continue
        written = _on_disk(folder).get(entry_point.name, {}).get("components")
        if written is None:
            lines.append(f"{entry_point.name}: no manifest in {folder}")
            continue
        was = {(r["registry"], r["name"]): r for r in written}
        now = {(r["registry"], r["name"]): r for r in live}
        lines += [f"{entry_point.name}: {k[0]} '{k[1]}' missing from the manifest" for k in now if k not in was]
        lines += [f"{entry_point.name}: {k[0]} '{k[1]}' no longer registered" for k in was if k not in now]
        lines += [f"{entry_point.name}: {k[0]} '{k[1]}' changed" for k in now if k in was and now[k] != was[k]]
    return lines


def write_manifests() -> list[Path]:
    """Rewrite the manifest of every entry point that loads here; return the files written."""
    load_plugins()
    by_folder: dict[Path, dict[str, Any]] = {}
    for entry_point in entry_points():
        live = live_components([entry_point]).get(entry_point.name)
        folder = entry_point_dir(entry_point)
        if live is None or folder is None:
            continue
        section = {"source_hash": source_hash(folder), "components": live}
        by_folder.setdefault(folder, _on_disk(folder))[entry_point.name] = section
    for folder, data in by_folder.items():
        (folder / MANIFEST_NAME).write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n", encoding="utf-8")
    forget_cache()
    return sorted(folder / MANIFEST_NAME for folder in by_folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omnissl.workflows.manifests", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the manifests (default: only check)")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_manifests():
            print(f"wrote {path}")
        return 0
    lines = differences()
    print("\n".join(lines) if lines else "manifests match the registry")
    if lines:
        print(f"regenerate with: {REGENERATE}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
