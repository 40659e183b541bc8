"""``omnissl validate RECIPE... [KEY=VALUE...]``: build every piece of a recipe and run one synthetic step."""

from __future__ import annotations

import argparse
from typing import Any

from omnissl.cli.options import add_data_root_options


def run(args: argparse.Namespace) -> int:
    from omnissl.core.config import load_recipe
    from omnissl.core.recipes import resolve_recipe

    paths = [str(resolve_recipe(a)) for a in args.recipes if "=" not in a]  # a shipped recipe's name works too
    overrides = [a for a in args.recipes if "=" in a]
    for path in paths:  # schema errors (train.stpes) first: this needs pydantic only, no torch, no plugin
        load_recipe(path, overrides, args.variant)
    from omnissl.workflows.session import check

    for path in paths:
        recipe, estimate = check(path, overrides, args.variant, estimate=not args.no_estimate)
        print(f"ok  {path}  ({recipe.name}: {recipe.objective.name}, {len(recipe.tower_specs())} tower(s))")
        if estimate is not None:
            print(f"    {estimate.line()}")
        if args.explain:  # what each builder gets and from where (recipe, input_spec, context, default)
            from omnissl.train.resolved import explain_recipe

            print(explain_recipe(path, overrides, args.variant))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help="build every piece of a recipe and run one step on a synthetic batch")
    p.add_argument("recipes", nargs="+", help="recipe YAML file(s) or shipped recipe names (image/simclr), then any KEY=VALUE overrides")
    p.add_argument("--variant", help="apply a named variant (e.g. gpu)")
    p.add_argument("--no-estimate", action="store_true", help="skip the timed step of the cost estimate")
    p.add_argument("--explain", action="store_true",
                   help="print every builder argument: component, parameter, value and its source")
    add_data_root_options(p, data_root=False)
    p.set_defaults(func=run)
