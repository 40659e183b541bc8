"""Atomic, verified checkpoints: temp file + fsync + rename; loaded with ``weights_only=True``.

A checkpoint holds only tensors and plain containers (no pickled objects), so ``torch.load(weights_only=True)``
reads it. A truncated or corrupted file is detected on load and the previous good checkpoint is named.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from omnissl.errors import CheckpointError

_PATTERN = re.compile(r"^step_(\d+)\.pt$")


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` so a crash leaves either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def list_checkpoints(directory: Path) -> list[Path]:
    """Step checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def save_step_checkpoint(payload: dict[str, Any], directory: Path, *, step: int, keep_last: int) -> Path:
    path = directory / f"step_{step:08d}.pt"
    atomic_save(payload, path)
    for old in list_checkpoints(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify one checkpoint; on failure say which earlier checkpoint is usable."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        earlier = [p for p in list_checkpoints(path.parent) if p != path and p.name < path.name]
        offer = f"; the previous checkpoint is {earlier[-1]} (resume from it with --checkpoint)" if earlier else ""
        raise CheckpointError(f"checkpoint {path} is unreadable (truncated or corrupted: {error}){offer}") from error
    if not isinstance(payload, dict) or "model" not in payload or "step" not in payload:
        raise CheckpointError(f"checkpoint {path} lacks 'model'/'step': not an omnissl training checkpoint")
    return payload


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None
