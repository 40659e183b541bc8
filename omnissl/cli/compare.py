"""``omnissl compare RUN_DIR... [--public SPEC]``: the decision table (raw / random init / SSL / public)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options, add_finetune_options
from omnissl.core.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    from omnissl.workflows.compare import CompareSettings, build_candidates, markdown_table, run_compare
    from omnissl.workflows.finetune_eval import finetune_settings
    from omnissl.report.compare_page import write_compare_outputs
    from omnissl.train.distributed import resolve_device

    runs = [Path(r) for r in args.overrides if "=" not in r]
    overrides = [r for r in args.overrides if "=" in r]
    for run_dir in runs:
        if not (run_dir / "recipe.yaml").is_file():
            raise ConfigError(f"compare: {run_dir} is not a run directory (no recipe.yaml)")
    recipe, assembled, rows = build_candidates(runs, args.public or [], overrides=overrides,
                                                  data_root=args.data_root,
                                                  recipe_path=Path(args.recipe) if args.recipe else None)
    modes = [] if args.finetune == ["none"] else args.finetune
    settings = CompareSettings(fractions=args.fractions, finetune_modes=modes, finetune=finetune_settings(args))
    result = run_compare(recipe, assembled, rows, settings, device=resolve_device(args.device),
                         run_root=runs[0].parent if runs else None)
    out = Path(args.out or (runs[0] if runs else Path(".")) / "compare")
    paths = write_compare_outputs(result, out, command=shlex.join(["omnissl", *sys.argv[1:]]))
    print(markdown_table(result))
    print(f"wrote {paths['md']}, {paths['json']}, {paths['html']}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="decision table: raw / random init / SSL runs / public backbones")
    # Named "overrides" so KEY=VALUE given after options is collected too (see omnissl.cli.main.main).
    p.add_argument("overrides", nargs="*", metavar="RUN_DIR", help="SSL run directories, then KEY=VALUE overrides")
    p.add_argument("--recipe", help="recipe naming the dataset and eval protocol (default: the first run's)")
    p.add_argument("--public", action="append", metavar="[LABEL=]SPEC",
                   help="public backbone: export folder, local HF model folder, or '{name: ENCODER, ...}'")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="label fractions")
    p.add_argument("--finetune", nargs="+", default=["last_blocks", "full"], choices=["last_blocks", "full", "none"])
    add_finetune_options(p)
    p.add_argument("--out", help="output folder (default: FIRST_RUN/compare)")
    p.add_argument("--device", default="auto")
    add_data_root_options(p)
    p.set_defaults(func=run)
