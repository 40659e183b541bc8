"""Datasets by name: ``<data root>/<collection>/<NAME>/`` for any NAME the folder holds (issue 22, item 7).

A fixed list of names made every unlisted TU or Planetoid set unreachable without disguising it as MUTAG or Cora;
the folder itself is the catalogue, so an unknown name is answered with what the folder does hold.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from omnissl.core.errors import ConfigError, DataError
from omnissl.core.paths import resolve_data_path

# A folder name, never a path: the name also prefixes file names (TU's <NAME>_A.txt), so '/' or '..' in it would
# read files the recipe never named. Covers the TU and Planetoid spellings (IMDB-BINARY, MSRC_21C, nell.0.001).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def available(folder: Path) -> list[str]:
    """The dataset folders ``folder`` holds (hidden entries and plain files are not datasets)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def dataset_folder(*, data_root: Path, collection: str, name: str) -> Path:
    """``<data_root>/<collection>/<name>``, checked: an unknown name names the folder looked in and its contents."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"data.dataset: {name!r} is not a dataset name (a folder under {collection}/: letters, "
                          f"digits, '_', '-', '.', '+', not starting with '.')")
    base = Path(data_root) / collection
    card = f"datasets/{collection}/CARD.md"
    if not base.is_dir():
        raise DataError(f"{base}: folder not found (datasets are read from <data root>/{collection}/<NAME>/; "
                        f"set --data-root or $OMNISSL_DATA_DIR; see {card})")
    folder = resolve_data_path(data_root, Path(collection) / name, key="data.dataset")
    if not folder.is_dir():
        names = available(base)
        close = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        has = f"it has {', '.join(names)}" if names else "it is empty"
        raise DataError(f"{base}: no dataset '{name}' ({has}{hint}; see {card})")
    return folder
