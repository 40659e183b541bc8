"""The recipes that ship with omnissl (package data ``omnissl.recipes``, the repository's ``recipes/`` folder):
finding one by name, the one-line summary ``omnissl list recipes`` prints, and copying one to edit.

A recipe is named by its path under ``recipes/`` without ``.yaml`` (``image/simclr``) or, when unambiguous, by its
file name alone (``simclr_digits``). A path to an existing file always wins over a name.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from omnissl.core.errors import ConfigError

# A stated result: a metric name, then its value in percent and what it was measured on ("k-NN@200 55.6 % on
# CIFAR-10 test"); other percentages in a header are masking ratios and the like.
_RESULT = re.compile(r"(?:k-NN(?:@\d+)?|linear[- ]probe|accuracy|top-1|macro-F1|F1|AUC|R@\d+)\s+\d+(?:\.\d+)?\s?%"
                     r"(?:\s+on\s+[^;,()]+)?", re.IGNORECASE)


def recipes_root() -> Path:
    """The shipped recipes folder: the ``omnissl.recipes`` package data, or a source checkout's ``recipes/``."""
    try:
        spec = importlib.util.find_spec("omnissl.recipes")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "recipes"


def shipped_recipes() -> dict[str, Path]:
    """``{"image/simclr": path, ...}``, sorted by name."""
    root = recipes_root()
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in sorted(root.glob("*/*.yaml"))}


def resolve_recipe(value: str | Path) -> Path:
    """A recipe argument → the file: an existing path as given, else a shipped recipe's name."""
    path = Path(value)
    if path.is_file() or str(value).endswith((".yaml", ".yml")) or path.is_dir():
        return path  # a path (a missing one is reported by the YAML reader with its name)
    shipped = shipped_recipes()
    name = str(value).removesuffix("/")
    if name in shipped:
        return shipped[name]
    by_stem = [key for key in shipped if key.rsplit("/", 1)[-1] == name]
    if len(by_stem) == 1:
        return shipped[by_stem[0]]
    if by_stem:
        raise ConfigError(f"recipe '{value}' is ambiguous: {', '.join(by_stem)}; give the modality too")
    close = difflib.get_close_matches(name, [*shipped, *{k.rsplit('/', 1)[-1] for k in shipped}], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"recipe '{value}': no such file and no shipped recipe of that name.{hint} "
                      f"See: omnissl list recipes")


@dataclass(frozen=True)
class RecipeSummary:
    name: str
    modality: str
    method: str
    headline: str


def _header(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return lines


def _method(path: Path) -> str:
    """The objective's name, read from the first ``objective:`` block without parsing the whole file."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^objective:\s*(?:\{\s*name:\s*([\w-]+)|\n\s+name:\s*([\w-]+))", text, re.MULTILINE)
    return (match.group(1) or match.group(2)) if match else "?"


def summarise(name: str, path: Path) -> RecipeSummary:
    """Modality (its folder), method (the objective) and the headline result: the first metric the header comment
    states ("k-NN@200 55.6 % on CIFAR-10 test"; "" when it states none)."""
    headline = ""
    for line in _header(path)[1:]:  # line 1 is the command that runs it
        found = _RESULT.search(line)
        if found:
            headline = found.group(0).strip(" .")
            break
    return RecipeSummary(name, name.split("/", 1)[0], _method(path), headline)


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy shipped recipe ``name`` to ``dest`` (a file, or a folder to put ``<file name>.yaml`` in); never
    overwrites."""
    source = resolve_recipe(name)
    if not source.is_file():
        raise ConfigError(f"cp: recipe '{name}' not found")
    target = Path(dest)
    if target.is_dir() or str(dest).endswith(("/", "\\")):  # a folder, existing or named as one
        target = target / source.name
    if target.exists():
        raise ConfigError(f"cp: {target} exists; omnissl cp never overwrites (remove it or choose another name)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
