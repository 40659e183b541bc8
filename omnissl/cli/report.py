"""``omnissl report RUN_DIR``: write ``RUN_DIR/report.html``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options


def run(args: argparse.Namespace) -> int:
    from omnissl.report import write_report

    page = write_report(Path(args.run_dir), data_root=args.data_root, embed=not args.no_map, max_points=args.points)
    print(f"wrote {page}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.html (plots, tables, embedding map)")
    p.add_argument("run_dir")
    add_data_root_options(p)
    p.add_argument("--no-map", action="store_true", help="skip the sections that load the model (embedding map)")
    p.add_argument("--points", type=int, default=1000, help="test samples in the embedding map (default 1000)")
    p.set_defaults(func=run)
