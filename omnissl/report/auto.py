"""The report ``train`` and ``eval`` write after a run: a convenience that never loses the run when it fails."""

from __future__ import annotations

import sys
from pathlib import Path


def auto_report(run_dir: Path, *, data_root: str | None = None, embed: bool = True) -> None:
    """Write the run report (``embed=False``: curves and tables only, no model loading); a failure is a warning,
    never a lost run (the checkpoints are already saved)."""
    try:
        from omnissl.report import write_report

        print(f"wrote {write_report(run_dir, data_root=data_root, embed=embed)}")
    except Exception as error:  # noqa: BLE001 - the report is a convenience on top of a finished run
        print(f"omnissl: warning: could not write the report for {run_dir} ({type(error).__name__}: {error}); "
              f"retry with: omnissl report {run_dir}", file=sys.stderr)
