"""Dotted-key overrides (``train.lr=0.1``, ``augment.global.ops.0.p=0.5``) on a raw recipe mapping.

Used by the command line's ``KEY=VALUE`` arguments and by a recipe's ``variants:``. Values are read with the same
YAML rules as recipe files (:mod:`omnissl.core.safe_yaml`), so ``train.steps=010`` is refused like ``steps: 010``.
"""

from __future__ import annotations

import copy
from typing import Any

from omnissl.core.errors import ConfigError
from omnissl.core.safe_yaml import load_yaml_text


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=0.1`` → (['train', 'lr'], 0.1); the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    value = load_yaml_text(raw, source=f"override '{text}'") if raw != "" else ""
    return key.split("."), value


def set_dotted(raw: dict[str, Any], path: list[str], value: Any, *, label: str) -> None:
    """Set ``raw[path[0]][path[1]]... = value`` in place (lists by index); ``label`` names the override in errors."""
    node: Any = raw
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, path[: depth + 1])]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{label}: '{'.'.join(path[:depth])}' is not a mapping")
        node = node.setdefault(part, {})
    if isinstance(node, list):
        node[_list_index(node, path[-1], path)] = value
    elif isinstance(node, dict):
        node[path[-1]] = value
    else:
        raise ConfigError(f"{label}: '{'.'.join(path[:-1])}' is not a mapping")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``KEY=VALUE`` of ``overrides`` applied in order."""
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(result, path, value, label=f"override '{text}'")
    return result


def _list_index(node: list[Any], part: str, path: list[str]) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise ConfigError(f"override key '{'.'.join(path)}': '{part}' is not an index of a list of {len(node)}")
    return int(part)
