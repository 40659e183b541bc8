"""``omnissl list --params NAME``: a component's parameters, their types and defaults, and which ones a recipe
need not set because the context fills them in (see CONTRIBUTING.md, "Components are typed builder functions").

Without it the only way to learn that VICReg's expander defaults to 8192×3 was to read the source.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from omnissl.core.errors import RegistryError
from omnissl.core.registry import REGISTRIES, Entry, load_plugins

# What build_data / assemble put in the context besides the dataset's input_spec (keep in step with assemble.py).
CORE_CONTEXT = {
    "dataset": {"data_root": "the data root (--data-root, else $OMNISSL_DATA_DIR, else ./data)",
                 "seed": "the recipe's seed", "synthetic": "set by validate (fake samples, no files)"},
    "objective": {"encoder": "the recipe's encoder", "encoders": "the encoders of the recipe's towers"},
}


def _find(name: str, kind: str | None) -> list[Entry]:
    load_plugins()
    registries = {kind: REGISTRIES[kind]} if kind else REGISTRIES
    found = [r.get(name) for r in registries.values() if name in {e.name for e in r.entries()}]
    if not found:
        names = sorted({e.name for r in registries.values() for e in r.entries()})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RegistryError(f"--params: no component named '{name}'.{hint} See: omnissl list")
    return found


def _type(parameter: inspect.Parameter) -> str:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return "any"
    # Builders use postponed annotations, so this is usually the source text itself ("int | None"): the most
    # readable form; a resolved type is shown by name.
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))


def _where(entry: Entry, name: str, parameter: inspect.Parameter) -> str:
    context = CORE_CONTEXT.get(entry.kind, {})
    if name in context:
        return f"from the context: {context[name]}"
    if parameter.default is inspect.Parameter.empty:
        example = (entry.example_params or {}).get(name)
        tail = f" (e.g. {example!r})" if example is not None else ""
        return f"required: from the dataset's input_spec when it publishes '{name}', else set it in the recipe{tail}"
    return f"default {parameter.default!r}"


def describe_entry(entry: Entry) -> str:
    params = [(n, p) for n, p in entry.signature.parameters.items()
              if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    lines = [f"{entry.kind} '{entry.name}' (modality {entry.modality}): {entry.description}"]
    width = max([len(n) for n, _ in params] or [0])
    type_width = max([len(_type(p)) for _, p in params] or [0])
    lines += [f"  {n:<{width}}  {_type(p):<{type_width}}  {_where(entry, n, p)}" for n, p in params] or ["  (none)"]
    if entry.kind != "dataset":  # the dataset is what publishes input_spec, so its own parameters never come from it
        lines.append("  A parameter the recipe leaves out is taken from the dataset's input_spec when it publishes "
                     "that name (in_channels, vocab_size, ...), before the default.")
    return "\n".join(lines)


def describe_params(name: str, *, kind: str | None = None) -> str:
    """Every component called ``name`` (of ``kind``, when given), one block each."""
    found: list[Any] = _find(name, kind)
    return "\n\n".join(describe_entry(entry) for entry in found)
