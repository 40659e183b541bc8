"""``omnissl list`` and ``omnissl list --params NAME``, answered from the plugins' manifests.

Importing every plugin to list them costs seconds (torch_geometric alone pulls in transformers), so the listing
reads each plugin's manifest (:mod:`omnissl.core.manifests`) and imports only a plugin whose manifest is missing or
older than its code. Which plugins cannot load is read from installed metadata, also without importing them.

``--params`` shows a component's parameters, their types and defaults, and which ones a recipe need not set
because the context fills them in (see CONTRIBUTING.md, "Components are typed builder functions"); without it the
only way to learn that VICReg's expander defaults to 8192×3 was to read the source.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from omnissl.core.errors import RegistryError
from omnissl.core.manifests import entry_point_dir, manifest_components
from omnissl.core.plugin_metadata import missing_extra
from omnissl.core.registry import COMPONENT_GROUP, entry_points, known_unavailable, load_entry_point

# What build_data / assemble put in the context besides the dataset's input_spec (keep in step with assemble.py).
CORE_CONTEXT = {
    "dataset": {"data_root": "the data root (--data-root, else $OMNISSL_DATA_DIR, else ./data)",
                 "seed": "the recipe's seed", "synthetic": "set by validate (fake samples, no files)"},
    "objective": {"encoder": "the recipe's encoder", "encoders": "the encoders of the recipe's towers"},
}


@dataclass
class Catalog:
    """Every installed component as manifest records, and the state of each plugin."""

    plugins: list[str] = field(default_factory=list)  # modality plugins that can load
    unavailable: dict[str, str] = field(default_factory=dict)  # plugin → what to install
    components: list[dict[str, Any]] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # entry points read live: no current manifest


def catalog() -> Catalog:
    from omnissl.workflows.manifests import live_components  # only needed when a manifest is missing or stale

    found = Catalog()
    for entry_point in entry_points():
        is_plugin = entry_point.group != COMPONENT_GROUP
        missing = missing_extra(entry_point)
        records = None if missing is not None else manifest_components(entry_point)
        if missing is None and records is None:
            if entry_point_dir(entry_point) is not None:  # a single-file plugin has no manifest to regenerate
                found.imported.append(entry_point.name)
            records = live_components([entry_point]).get(entry_point.name)
            missing = known_unavailable().get(entry_point.name) if records is None else None
        if missing is not None:
            found.unavailable[entry_point.name] = str(missing)
            continue
        found.plugins += [entry_point.name] if is_plugin else []
        found.components += records or []
    found.plugins.sort()
    return found


def _find(name: str, kind: str | None, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pool = [c for c in components if kind is None or c["registry"] == kind]
    found = [c for c in pool if c["name"] == name]
    if not found:
        close = difflib.get_close_matches(name, sorted({c["name"] for c in pool}), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RegistryError(f"--params: no component named '{name}'.{hint} See: omnissl list")
    order = ["encoders", "augmentations", "objectives", "datasets", "evaluations"]
    return sorted(found, key=lambda c: order.index(c["registry"]) if c["registry"] in order else len(order))


def _where(record: dict[str, Any], param: dict[str, Any]) -> str:
    name = param["name"]
    context = CORE_CONTEXT.get(record["kind"], {})
    if name in context:
        return f"from the context: {context[name]}"
    if "default" not in param:
        tail = f" (e.g. {param['example']})" if "example" in param else ""
        return f"required: from the dataset's input_spec when it publishes '{name}', else set it in the recipe{tail}"
    return f"default {param['default']}"


def describe_entry(record: dict[str, Any]) -> str:
    """One component's block of ``list --params`` from its manifest record."""
    params = record["params"]
    lines = [f"{record['kind']} '{record['name']}' (modality {record['modality']}): {record['description']}"]
    width = max([len(p["name"]) for p in params] or [0])
    type_width = max([len(p["type"]) for p in params] or [0])
    lines += [f"  {p['name']:<{width}}  {p['type']:<{type_width}}  {_where(record, p)}" for p in params] or ["  (none)"]
    if record["kind"] != "dataset":  # the dataset is what publishes input_spec, so its own parameters never come from it
        lines.append("  A parameter the recipe leaves out is taken from the dataset's input_spec when it publishes "
                     "that name (in_channels, vocab_size, ...), before the default.")
    return "\n".join(lines)


def describe_params(name: str, *, kind: str | None = None, components: list[dict[str, Any]] | None = None) -> str:
    """Every component called ``name`` (of registry ``kind``, when given), one block each."""
    found = _find(name, kind, components if components is not None else catalog().components)
    return "\n\n".join(describe_entry(record) for record in found)
