"""Run reports: plots of a run's metrics, a 2-D map of its evaluation features, the probe table and
per-objective extras, gathered in one self-contained HTML file (images embedded as base64 PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(run_dir: str | Path, **kwargs: Any) -> Path:
    """See :func:`omnissl.report.page.write_report` (imported lazily: matplotlib loads only when used)."""
    from omnissl.report.page import write_report as _write

    return _write(run_dir, **kwargs)


__all__ = ["write_report"]
