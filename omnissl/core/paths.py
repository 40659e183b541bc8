"""Where a recipe may read files from: inside the data root, unless the user opts out on purpose.

A recipe is a shareable text file, so a path in it must not reach every file the user can read (an audit
found ``data.train: /etc/passwd`` copied into a run's ``schema.json``). Every dataset builder resolves its file
parameters through :func:`resolve_data_path`:

- a relative path is joined to the data root and must stay inside it (``..`` that escapes is refused);
- an absolute path is accepted when it lies inside the data root;
- any other absolute path needs the user's opt-in: ``omnissl ... --allow-outside-data-root`` or
  ``OMNISSL_ALLOW_OUTSIDE_DATA_ROOT=1``. A recipe cannot grant itself that (``data_root`` is not a recipe key).

The refusal does not say whether the outside file exists, so it cannot be used to probe the file system.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from omnissl.core.errors import DataError

ALLOW_OUTSIDE_ENV = "OMNISSL_ALLOW_OUTSIDE_DATA_ROOT"
_allow_outside_override: bool | None = None


def outside_paths_allowed() -> bool:
    """True when the user asked for paths outside the data root (CLI flag or environment variable)."""
    if _allow_outside_override is not None:
        return _allow_outside_override
    return os.environ.get(ALLOW_OUTSIDE_ENV, "").strip().lower() in {"1", "true", "yes"}


def set_outside_paths_allowed(allowed: bool | None) -> None:
    """Set by the CLI's ``--allow-outside-data-root``; ``None`` goes back to the environment variable."""
    global _allow_outside_override
    _allow_outside_override = allowed


@contextmanager
def outside_paths(allowed: bool) -> Iterator[None]:
    """Temporarily allow (or forbid) paths outside the data root, e.g. in tests or library code."""
    global _allow_outside_override
    previous = _allow_outside_override
    _allow_outside_override = allowed
    try:
        yield
    finally:
        _allow_outside_override = previous


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def resolve_data_path(data_root: str | Path, value: str | Path, *, key: str) -> Path:
    """``value`` (a recipe's file parameter named ``key``, e.g. ``data.train``) as a path under ``data_root``.

    Raises :class:`DataError` naming ``key`` when the path leaves the data root without the user's opt-in.
    Symlinks inside the root are followed when checking, so a link cannot smuggle an outside file in.
    """
    root = Path(data_root).expanduser()
    raw = Path(value).expanduser()
    candidate = raw if raw.is_absolute() else root / raw
    if outside_paths_allowed():
        return candidate
    real_root = root.resolve()
    if _inside(candidate.resolve(), real_root):
        return candidate
    how = "is outside" if raw.is_absolute() else "leaves"
    raise DataError(
        f"{key}: path '{value}' {how} the data root {root}; recipe paths are read inside the data root "
        f"(--data-root / $OMNISSL_DATA_DIR). To read it on purpose, pass --allow-outside-data-root "
        f"or set {ALLOW_OUTSIDE_ENV}=1"
    )
