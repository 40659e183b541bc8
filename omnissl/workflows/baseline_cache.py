"""The baseline cache of the evaluation engine: one JSON file per (dataset, subsets, architecture, seed, protocol).

Key (a JSON object, hashed with sha256 for the file name ``<root>/<sha256>.json``): the recipe's ``data`` section,
the recipe seed, the eval subset limits, the train/test subset sizes and index hashes, the label hashes of both
subsets, the tower, the row's identity (``{"kind": "random init", "architecture": <encoder section>, "seed": …}``
or ``{"kind": "raw"}``), its name, and the protocol's name and settings. The file holds the key beside the cell, so
a hash collision or a hand-edited file is detected (the key must match) rather than silently reused. Writes are
atomic (temp file + rename), so a killed command never leaves half a file. Delete the folder to recompute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omnissl.eval.engine import cache_digest
from omnissl.train.logging import atomic_write_text


class BaselineCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: Mapping[str, Any]) -> Path:
        return self.root / f"{cache_digest(key)}.json"

    def get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None  # absent or unreadable: recompute (and overwrite)
        canonical = json.loads(json.dumps(dict(key), sort_keys=True, default=str))
        if not isinstance(saved, dict) or saved.get("key") != canonical:
            return None
        return saved.get("value")

    def put(self, key: Mapping[str, Any], value: dict[str, Any]) -> None:
        payload = {"key": json.loads(json.dumps(dict(key), sort_keys=True, default=str)), "value": value}
        atomic_write_text(self._path(key), json.dumps(payload, indent=1, default=str))


def cache_root(run_root: Path) -> Path:
    """Where a run root (``runs/``) keeps its baselines: ``runs/.cache/baselines``."""
    return Path(run_root) / ".cache" / "baselines"
