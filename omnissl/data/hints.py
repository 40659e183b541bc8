"""What a missing dataset file's error adds so that a new user can fix it: which data-root setting was in effect
(``--data-root``, ``$OMNISSL_DATA_DIR`` or the ``./data`` default) with its value, and the dataset's card.

Done here, once, for every plugin: readers only say "… not found: PATH" (or pass ``missing_path=``).
"""

from __future__ import annotations

import os
from pathlib import Path

from omnissl.core.errors import DataError

DATA_ROOT_ENV = "OMNISSL_DATA_DIR"
CARDS = Path(__file__).resolve().parents[2] / "datasets"  # in a checkout; an installed wheel has none
_STRIP = " \t:;,()[]'\"`"


def missing_path(error: DataError) -> Path | None:
    """The path ``error`` is about when that path does not exist: ``missing_path``, else the first path-looking
    word of a "not found" message that is not there (a message about a missing *column* names no such path)."""
    if error.missing_path is not None:
        return error.missing_path
    message = str(error)
    if "not found" not in message.lower():
        return None
    for word in message.split():
        word = word.strip(_STRIP)
        if os.sep in word and not Path(word).exists():
            return Path(word)
    return None


def data_root_setting(explicit: str | Path | None) -> str:
    """Which setting chose the data root, and its value."""
    if explicit is not None:
        return f"--data-root {explicit}"
    if DATA_ROOT_ENV in os.environ:
        return f"${DATA_ROOT_ENV}={os.environ[DATA_ROOT_ENV]}"
    return f"the default ./data (neither --data-root nor ${DATA_ROOT_ENV} is set)"


def dataset_card(name: str) -> Path | None:
    """``datasets/NAME/CARD.md``, else the card whose text names the dataset as registered (```NAME```)."""
    direct = CARDS / name / "CARD.md"
    if direct.is_file():
        return direct
    for card in sorted(CARDS.glob("*/CARD.md")):
        if f"`{name}`" in card.read_text(encoding="utf-8", errors="replace"):
            return card
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def with_data_hint(error: DataError, *, dataset: str, explicit_root: str | Path | None) -> DataError:
    """``error`` with the data-root setting and the card added, or ``error`` itself when no file is missing."""
    missing = missing_path(error)
    if missing is None:
        return error
    card = dataset_card(dataset)
    where = f"; how to get it: {_shown(card)}" if card else ""
    return DataError(f"{error} (data root: {data_root_setting(explicit_root)}; pass --data-root DIR or set "
                     f"${DATA_ROOT_ENV} to the folder that holds the datasets{where})", missing_path=missing)
