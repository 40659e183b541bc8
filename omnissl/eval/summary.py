"""One way to write an accuracy "mean ± std over seeds", shared by the terminal tables, Markdown and HTML pages.

The spread of a single seed is 0 by construction, so "96.00 ± 0.00" would claim a precision nobody measured:
a one-seed result is written "96.00 (1 seed)" instead. Results saved before the seed count was recorded keep
the plain "mean ± std" form (their seed count is unknown, not 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def seed_count(*, result: Mapping[str, Any]) -> int | None:
    """Seeds behind a result: its ``seeds`` entry, else the length of ``per_seed``; ``None`` when neither is saved."""
    if isinstance(result.get("seeds"), int):
        return int(result["seeds"])
    per_seed = result.get("per_seed")
    return len(per_seed) if isinstance(per_seed, (list, tuple)) and per_seed else None


def mean_std(*, mean: float, std: float, seeds: int | None, scale: float = 100.0, digits: int = 2) -> str:
    """``98.52 ± 0.13`` for several seeds, ``96.00 (1 seed)`` for one (accuracies in [0, 1] shown in %)."""
    if seeds == 1:
        return f"{scale * mean:.{digits}f} (1 seed)"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def score(*, result: Mapping[str, Any], digits: int = 2) -> str:
    """A saved result (``{"mean", "std", "per_seed" | "seeds"}``, accuracies in [0, 1]) written in %."""
    return mean_std(mean=float(result["mean"]), std=float(result.get("std", 0.0)), seeds=seed_count(result=result),
                    digits=digits)
