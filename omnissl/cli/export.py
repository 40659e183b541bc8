"""``omnissl export RUN_DIR``: a run's encoder(s) as safetensors + JSON (+ HF ``save_pretrained``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options


def run(args: argparse.Namespace) -> int:
    from omnissl.workflows.export import export_run

    for path in export_run(Path(args.run_dir), args.out, checkpoint=args.checkpoint, data_root=args.data_root,
                           overwrite=args.overwrite):
        print(f"wrote {path.parent} ({path.name} + encoder.safetensors)")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a run's encoder(s) to safetensors + JSON (+ HF save_pretrained)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the latest)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export (never by default)")
    add_data_root_options(p)
    p.set_defaults(func=run)
