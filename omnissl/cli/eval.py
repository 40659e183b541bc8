"""``omnissl eval RUN_DIR|RECIPE [KEY=VALUE...]``: the shared evaluation protocol (and ``--finetune``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options, add_finetune_options, add_recipe_overrides, print_reports


def run(args: argparse.Namespace) -> int:
    from omnissl.train.assemble import assemble
    from omnissl.core.config import load_recipe
    from omnissl.workflows.session import evaluate_assembled, load_trained

    target = Path(args.target)
    if target.is_dir():
        assembled = load_trained(target, checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                                 root=args.data_root, overrides=args.overrides)
        out_dir, trained = target, True
    else:
        assembled = assemble(load_recipe(target, args.overrides), root=args.data_root)
        out_dir, trained = Path(args.out or "."), False
    # Baselines are cached under the run root (RUN_ROOT/.cache/baselines): a run's parent, else runs/ (where
    # `omnissl train` puts runs by default), so evaluating a recipe untrained reuses what training computed.
    run_root = target.parent if trained else Path("runs")
    reports = evaluate_assembled(assembled, trained=trained, device=assembled.recipe.train.device, run_root=run_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    print_reports(reports, out_dir)
    from omnissl.report.auto import auto_report  # looked up per call: tests replace it
    from omnissl.workflows.finetune_eval import finetune_eval

    if args.finetune:
        finetune_eval(assembled, args, out_dir)
    if trained:
        auto_report(out_dir, data_root=args.data_root)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate a run directory (or a recipe, untrained)")
    p.add_argument("target")
    add_recipe_overrides(p)
    add_data_root_options(p)
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the latest)")
    p.add_argument("--out", help="where eval.json goes when evaluating a recipe")
    p.add_argument("--finetune", nargs="+", choices=["last_blocks", "full"],
                   help="also fine-tune: last_blocks (last N blocks + head) and/or full (lower encoder lr)")
    add_finetune_options(p)
    p.set_defaults(func=run)
