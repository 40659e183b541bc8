"""``omnissl pseudolabel RUN_DIR [--labels 0.01 0.1] [--seeds N] [--rounds N] [--out PATH]``: self-training after
SSL — the probe on a labelled fraction, pseudo-labels for the most confident rest of train, the probe retrained —
beside the plain probe at the same fractions (:mod:`omnissl.eval.self_training`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options, add_recipe_overrides


def run(args: argparse.Namespace) -> int:
    from omnissl.core.errors import ConfigError
    from omnissl.eval.self_training import check_fractions
    from omnissl.workflows.pseudolabel import as_json, markdown, pseudolabel_assembled
    from omnissl.workflows.session import load_trained

    target = Path(args.target)
    if not target.is_dir():
        raise ConfigError(f"pseudolabel: {target} is not a run directory (train one with `omnissl train RECIPE`)")
    try:
        fractions = check_fractions(args.labels, key="--labels")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if args.seeds < 1 or args.rounds < 1:
        raise ConfigError(f"pseudolabel: --seeds and --rounds must be ≥ 1 (got {args.seeds}, {args.rounds})")
    assembled = load_trained(target, checkpoint=Path(args.checkpoint) if args.checkpoint else None,
                             root=args.data_root, overrides=args.overrides)
    tables = pseudolabel_assembled(assembled, fractions=fractions, seeds=args.seeds, rounds=args.rounds,
                                   run_root=target.parent, source=str(target))
    header = (f"# Self-training after SSL: {target}\n\nlabel fractions {', '.join(f'{100 * f:g}%' for f in fractions)}"
              f"; {args.seeds} seed(s) = label draws; {args.rounds} round(s); test accuracy mean ± std")
    text = markdown(tables, header=header)
    print(text)
    out = Path(args.out) if args.out else target / "pseudolabel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(as_json(tables, run=str(target), fractions=fractions, seeds=args.seeds,
                                      rounds=args.rounds), indent=2), encoding="utf-8")
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pseudolabel", help="self-training: probe on a label fraction + confident pseudo-labels")
    p.add_argument("target", metavar="RUN_DIR")
    add_recipe_overrides(p)
    add_data_root_options(p)
    p.add_argument("--labels", type=float, nargs="+", default=[0.01, 0.1],
                   help="labelled fractions of train, each in (0, 1) (default: 0.01 0.1)")
    p.add_argument("--seeds", type=int, default=3, help="label draws per fraction (the ± spread; default 3)")
    p.add_argument("--rounds", type=int, default=1, help="self-training rounds (student relabels; default 1)")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the latest)")
    p.add_argument("--out", help="the JSON file (default RUN_DIR/pseudolabel.json; the .md lies beside it)")
    p.set_defaults(func=run)
